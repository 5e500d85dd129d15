package netsim

import (
	"fmt"
	"regexp"
)

// MaxLabName is the longest lab name New accepts. Every namespace is
// "nplab-<lab>-<host>"; a short lab name keeps those readable in `ip netns
// list` and leaves room for names derived from the lab (links, pcap files)
// within the kernel's 15-byte interface-name limit.
const MaxLabName = 12

// SCTPStreams is how many streams each SCTP association asks for in each
// direction: a message's stream id (MessageInfo.Stream) must be below it.
const SCTPStreams = 16

// MaxDevName is the longest interface name the kernel accepts (IFNAMSIZ-1).
const MaxDevName = 15

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

// ValidateLabName reports why name cannot be a lab name, or nil. A lab name
// is a DNS-1123 label (lower-case letters, digits and '-', starting and
// ending with a letter or digit) of at most MaxLabName characters.
func ValidateLabName(name string) error {
	if name == "" {
		return fmt.Errorf("invalid lab name %q: must not be empty", name)
	}
	if len(name) > MaxLabName {
		return fmt.Errorf("invalid lab name %q: at most %d characters (namespaces are named nplab-<lab>-<host>, interface names at most %d bytes)", name, MaxLabName, MaxDevName)
	}
	if !dnsLabel.MatchString(name) {
		return fmt.Errorf("invalid lab name %q: must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit)", name)
	}
	return nil
}

// maxHostName keeps "nplab-<lab>-<host>" within a file name's 255 bytes.
const maxHostName = 200

// validateHostName reports why name cannot be a host name: hosts are named
// like Kubernetes objects (a DNS-1123 subdomain: "node-1", "web-7d4b9-x2p").
func validateHostName(name string) error {
	if name == "" {
		return fmt.Errorf("invalid host name %q: must not be empty", name)
	}
	if len(name) > maxHostName {
		return fmt.Errorf("invalid host name %q: at most %d characters", name, maxHostName)
	}
	if !dnsSubdomain.MatchString(name) {
		return fmt.Errorf("invalid host name %q: must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')", name)
	}
	return nil
}

// validateDev reports why name cannot be an interface name.
func validateDev(name string) error {
	if name == "" {
		return fmt.Errorf("invalid interface name %q: must not be empty", name)
	}
	if len(name) > MaxDevName {
		return fmt.Errorf("invalid interface name %q: %d bytes, the kernel allows at most %d", name, len(name), MaxDevName)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("invalid interface name %q", name)
	}
	for _, c := range name {
		if c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return fmt.Errorf("invalid interface name %q: no '/', ':', spaces or control characters", name)
		}
	}
	return nil
}

// NamespaceName is the network namespace of host in lab:
// "nplab-<lab>-<host>".
func NamespaceName(lab, host string) string {
	return "nplab-" + lab + "-" + host
}
