"""Appearances: photos and recorded sessions -> codes of a model's latent bank
(`thermal-synth codes`), the names a user picks with `ros2 param set latent_code`.
"""
