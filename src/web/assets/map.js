// Filled in with the maps.
