"""Files without pickle: safetensors with the trimming plan in the header, written atomically."""
