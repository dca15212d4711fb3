"""Statistics: what a bootstrap resample draws (`resample`) and the intervals of every difference (`stats`)."""
