"""The fleet planner: characterise one replica of each (service, chip, serving
configuration) by simulation (characterise.py, cached by content hash), choose how
many replicas of each with an integer program under the facility's power budget
(optimise.py, no simulation), verify a slice of the answer by simulation (verify.py),
and describe the result (fleet.py, views.py)."""
