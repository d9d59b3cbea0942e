"""Map2Traj: street maps, trajectory data and a map-conditioned diffusion trajectory model."""
