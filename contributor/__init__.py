"""The contributor app: train experts, upload them with resume, follow their status."""
