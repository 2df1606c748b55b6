"""Running a job: parameters, presets, the run service, the exact and scalable drivers, memory, device, progress, records."""
