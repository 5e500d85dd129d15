package netsim

import (
	"strings"
	"testing"
)

func TestValidateLabName(t *testing.T) {
	for _, tc := range []struct {
		name, wantErr string
	}{
		{"demo", ""},
		{"lab-2", ""},
		{"a", ""},
		{"abcdefghijkl", ""},
		{"", "must not be empty"},
		{"abcdefghijklm", "at most 12 characters"},
		{"Demo", "DNS-1123 label"},
		{"-demo", "DNS-1123 label"},
		{"demo-", "DNS-1123 label"},
		{"de_mo", "DNS-1123 label"},
		{"de.mo", "DNS-1123 label"},
		{"../x", "DNS-1123 label"},
	} {
		err := ValidateLabName(tc.name)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("ValidateLabName(%q) = %v, want nil", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ValidateLabName(%q) = %v, want an error containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestValidateDev(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"eth0", true},
		{"abcdefghijklmno", true},
		{"abcdefghijklmnop", false},
		{"", false},
		{"a/b", false},
		{"a b", false},
		{"..", false},
	} {
		err := validateDev(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("validateDev(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if err := validateDev("abcdefghijklmnop"); err == nil || !strings.Contains(err.Error(), "at most 15") {
		t.Errorf("a 16-byte name's error %v does not give the limit", err)
	}
}

func TestValidateHostName(t *testing.T) {
	for _, name := range []string{"node-1", "client", "web-7d4b9-x2p", "a.b"} {
		if err := validateHostName(name); err != nil {
			t.Errorf("validateHostName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", "Node", "a/b", "-a", strings.Repeat("a", 201)} {
		if err := validateHostName(name); err == nil {
			t.Errorf("validateHostName(%q) = nil, want an error", name)
		}
	}
}
