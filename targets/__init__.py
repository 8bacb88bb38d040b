"""Code generators and target descriptions, installed as ``loopc.targets``."""
