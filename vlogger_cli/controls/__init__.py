"""Camera maths (pure), offscreen rasterisation, the control maps C^d / C^m / C^w + flow, their storage."""
