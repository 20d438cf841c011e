"""Pure cost model: workload steps to ops, ops to time and energy on a chip (no simulation)."""
