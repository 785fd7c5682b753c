"""shegong: the monthly roll-up of the social-work workforce against the city's plan."""
