"""AutoTVM-style tuning: templates, config spaces, tuners, measurement, records."""
