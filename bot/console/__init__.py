"""The console face: the staff runner and scenario files."""
