"""The incident gallery: replays of public agent incidents against real targets (`interlock demo`).

Each scenario lives in `examples/incidents/NAME/` (its policy, the real target it builds, the agent's
actions in order and what should happen); this package reads it (`scenario`), builds the target
(`worlds`), sends every action through the one Gateway sequence (`replay`) and prints it (`cli`).
"""
