"""Files in and out: decode any media, write audio and video whole or not at all (atomic), tagged as synthetic."""
