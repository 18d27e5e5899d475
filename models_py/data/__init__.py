"""Event files as they land: the strict reader and the load into the warehouse's raw schema."""
