// Package qrsvg draws a QR code (github.com/skip2/go-qrcode) as an inline
// SVG image, so that a page can show one without loading anything: the TOTP
// enrolment's otpauth:// URI never leaves the server that made the page.
package qrsvg

import (
	"fmt"
	"html/template"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// SVG returns the QR code of text as an SVG element of size pixels, labelled
// for assistive technology by label (the manual key is shown next to it).
func SVG(text, label string, size int) (template.HTML, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("qr code: %w", err)
	}
	bits := q.Bitmap() // with its quiet zone
	n := len(bits)
	var path strings.Builder
	for y, row := range bits {
		for x, dark := range row {
			if dark {
				fmt.Fprintf(&path, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	return template.HTML(fmt.Sprintf( //nolint:gosec // numbers and an escaped label only
		`<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="%s" width="%d" height="%d" viewBox="0 0 %d %d" shape-rendering="crispEdges"><rect width="%d" height="%d" fill="#fff"/><path d="%s" fill="#000"/></svg>`,
		template.HTMLEscapeString(label), size, size, n, n, n, n, path.String())), nil
}
