package qrsvg

import (
	"strings"
	"testing"
)

func TestSVG(t *testing.T) {
	svg, err := SVG("otpauth://totp/Gatehouse:alice?secret=JBSWY3DPEHPK3PXP&issuer=Gatehouse", `QR code "for" <alice>`, 200)
	if err != nil {
		t.Fatal(err)
	}
	s := string(svg)
	if !strings.HasPrefix(s, "<svg ") || !strings.Contains(s, `aria-label="QR code &#34;for&#34; &lt;alice&gt;"`) || strings.Count(s, "h1v1h-1z") < 100 {
		t.Fatalf("svg %.300s", s)
	}
	if strings.Contains(s, "JBSWY3DPEHPK3PXP") {
		t.Fatal("the secret is in the SVG as text")
	}
}
