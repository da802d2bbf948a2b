"""Cost reports: the admin's `costReport`, the caller's `myUsage`, and the CSV export."""
