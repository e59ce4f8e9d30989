package main

// cell is s for a table cell, or "-" when s is empty, so every row keeps
// one word per column for readers and for awk.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
