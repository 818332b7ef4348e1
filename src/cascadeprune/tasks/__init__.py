"""Tasks that compressed models are measured on."""
