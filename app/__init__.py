"""SteerGAN Studio: the Qt application and the command line."""
