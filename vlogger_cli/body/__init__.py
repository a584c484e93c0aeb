"""Body model, portrait reading, landmarks and fitting (DESIGN.md "body/")."""
