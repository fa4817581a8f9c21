"""The Ray layer: zoo and study jobs, the parallel map over Ray tasks, progress, the Jobs API client."""
