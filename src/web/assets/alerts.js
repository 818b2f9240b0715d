// Filled in with the live alerts page.
