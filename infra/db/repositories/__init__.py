"""Write-side repositories: they stage rows in the unit of work's session and never commit."""
