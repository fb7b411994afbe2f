"""What every page shares: templates, language choice, cookies, error pages."""
