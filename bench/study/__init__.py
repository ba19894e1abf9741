"""`bench study mini`: the paper's ablations at laptop scale on the synthetic twins (config: mini.yaml)."""
