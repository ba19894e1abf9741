"""Results to tables: terminal/Markdown tables now; paper tables and the static page build on them."""
