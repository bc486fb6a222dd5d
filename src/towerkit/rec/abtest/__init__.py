"""A/B testing: abtest assign, analyse, simulate."""
