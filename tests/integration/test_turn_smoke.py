"""A first end-to-end turn through GraphQL against the fake OpenAI server."""

from __future__ import annotations

from tests.conftest import Actor, GraphQL
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer

CREATE = "mutation { createSession(input: {}) { id } }"
RUN = """
mutation($input: RunTurnInput!) {
  runTurn(input: $input) {
    index status assistantOutput
    routing { mode selectedAgentKeys ignoredTags usedFallback fallbackReason }
    contextAudit { modelAliases }
    messages {
      position status content agent { key } error { code }
      usage { callKind billingCategory costUsd }
    }
    usage { callKind agentKey billingCategory }
  }
}"""


async def test_manual_turn_with_two_tags_runs_both_in_order(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.set_default(FakeResponse(content="Writer says hi"), model="writer-large")
    fake_openai.set_default(FakeResponse(content="Qwen says hi"), model="qwen-plus")
    session = (await turn_gql(CREATE, as_=alice))["data"]["createSession"]["id"]

    body = await turn_gql(
        RUN, {"input": {"sessionId": session, "message": "@writer then @qwen, @nobody"}}, as_=alice
    )

    turn = body["data"]["runTurn"]
    assert turn["status"] == "COMPLETED", body
    assert turn["routing"]["selectedAgentKeys"] == ["writer", "qwen"]
    assert turn["routing"]["ignoredTags"] == ["nobody"]
    assert turn["assistantOutput"] == "Writer: Writer says hi\n\nQwen: Qwen says hi"
    assert turn["contextAudit"]["modelAliases"] == ["writer-large", "qwen-plus"]
    assert [m["agent"]["key"] for m in turn["messages"]] == ["writer", "qwen"]
    qwen_prompt = fake_openai.requests(model="qwen-plus")[0].messages
    assert any("Writer: Writer says hi" in m["content"] for m in qwen_prompt)
    assert qwen_prompt[-1]["content"] == "@writer then @qwen, @nobody"


async def test_orchestrator_falls_back_when_the_manager_answers_not_json(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    session = (await turn_gql(CREATE, as_=alice))["data"]["createSession"]["id"]

    body = await turn_gql(
        RUN, {"input": {"sessionId": session, "message": "hi", "mode": "ORCHESTRATOR"}}, as_=alice
    )

    turn = body["data"]["runTurn"]
    assert turn["routing"]["usedFallback"] is True
    assert turn["routing"]["selectedAgentKeys"] == ["qwen"]
    assert turn["usage"][0]["callKind"] == "MANAGER_ROUTING"
    assert turn["usage"][0]["billingCategory"] == "UNMETERED"
    assert len(fake_openai.requests(model="manager-mini")) == 1
