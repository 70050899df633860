"""The netlist of record of grooverack's boards and what is generated from it (hw/generate.py):
KiCad netlist, BOM, SPICE decks, simulation results, power budget. Not part of the runtime."""
