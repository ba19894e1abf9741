"""The encoder zoo: one module per family, each entry one factory decorated with `register_encoder`."""
