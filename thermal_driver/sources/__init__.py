"""Thermal sources: the Lepton over SPI/I2C (lepton/), PureThermal UVC, AMG8833,
bag replay and the simulated rig (rig/); registry.py picks one by name.
"""
