package api

// ReencodeCursor parses s as a delivery-list cursor and encodes it again, so
// that the external tests can check that an accepted cursor round-trips.
func ReencodeCursor(s string) (string, error) {
	c, err := parseCursor(s)
	if err != nil {
		return "", err
	}
	return c.encode(), nil
}
