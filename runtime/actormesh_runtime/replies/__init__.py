"""Reply text built from an envelope's real data: `facts` (sentences) and `templates` (whole replies)."""
