"""Small helpers every room uses: JSON files, output folders, contact sheets, CLI
argument types, interrupts.
"""
