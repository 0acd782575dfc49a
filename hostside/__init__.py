"""What runs on the ARM cores: driver, passes, planner, scheduler and the NEON (numpy) runtime."""
