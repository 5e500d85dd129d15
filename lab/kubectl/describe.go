package kubectl

import (
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// DescribeService prints `kubectl describe service` for svc, whose
// EndpointSlices are slices (nil when the Service has none: no selector).
// nplab records no Kubernetes Events for Services (a real API server records
// none for a NodePort create either), so the last line is `Events: <none>`.
//
//	Name:                     web
//	...
//	Port:                     http  80/TCP
//	TargetPort:               8080/TCP
//	NodePort:                 http  30080/TCP
//	Endpoints:                10.244.1.2:8080,10.244.2.2:8080,10.244.3.2:8080
func DescribeService(w io.Writer, svc *corev1.Service, slices []discoveryv1.EndpointSlice) error {
	// describe's tabbedString: minwidth 0, tabwidth 8, padding 2.
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	s := svc.Spec
	p("Name:\t%s\n", svc.Name)
	p("Namespace:\t%s\n", svc.Namespace)
	printLabels(tw, "Labels", svc.Labels)
	printAnnotations(tw, "Annotations", svc.Annotations)
	p("Selector:\t%s\n", labels.FormatLabels(s.Selector))
	p("Type:\t%s\n", s.Type)
	if s.IPFamilyPolicy != nil {
		p("IP Family Policy:\t%s\n", *s.IPFamilyPolicy)
	}
	if len(s.IPFamilies) > 0 {
		fams := make([]string, len(s.IPFamilies))
		for i, f := range s.IPFamilies {
			fams[i] = string(f)
		}
		p("IP Families:\t%s\n", strings.Join(fams, ","))
	} else {
		p("IP Families:\t%s\n", "<none>")
	}
	p("IP:\t%s\n", s.ClusterIP)
	if len(s.ClusterIPs) > 0 {
		p("IPs:\t%s\n", strings.Join(s.ClusterIPs, ","))
	} else {
		p("IPs:\t%s\n", "<none>")
	}
	if len(s.ExternalIPs) > 0 {
		p("External IPs:\t%v\n", strings.Join(s.ExternalIPs, ","))
	}
	if s.LoadBalancerIP != "" {
		p("Desired LoadBalancer IP:\t%s\n", s.LoadBalancerIP)
	}
	if s.ExternalName != "" {
		p("External Name:\t%s\n", s.ExternalName)
	}
	for _, sp := range s.Ports {
		name := sp.Name
		if name == "" {
			name = "<unset>"
		}
		p("Port:\t%s\t%d/%s\n", name, sp.Port, sp.Protocol)
		if sp.TargetPort.Type == 0 { // intstr.Int
			p("TargetPort:\t%d/%s\n", sp.TargetPort.IntVal, sp.Protocol)
		} else {
			p("TargetPort:\t%s/%s\n", sp.TargetPort.StrVal, sp.Protocol)
		}
		if sp.NodePort != 0 {
			p("NodePort:\t%s\t%d/%s\n", name, sp.NodePort, sp.Protocol)
		}
		p("Endpoints:\t%s\n", formatEndpointSlices(slices, sp.Name))
	}
	p("Session Affinity:\t%s\n", s.SessionAffinity)
	if s.ExternalTrafficPolicy != "" {
		p("External Traffic Policy:\t%s\n", s.ExternalTrafficPolicy)
	}
	if s.InternalTrafficPolicy != nil {
		p("Internal Traffic Policy:\t%s\n", *s.InternalTrafficPolicy)
	}
	if s.HealthCheckNodePort != 0 {
		p("HealthCheck NodePort:\t%d\n", s.HealthCheckNodePort)
	}
	if len(s.LoadBalancerSourceRanges) > 0 {
		p("LoadBalancer Source Ranges:\t%v\n", strings.Join(s.LoadBalancerSourceRanges, ","))
	}
	if s.TrafficDistribution != nil && *s.TrafficDistribution != "" {
		p("Traffic Distribution:\t%s\n", *s.TrafficDistribution)
	}
	p("Events:\t<none>\n")
	return tw.Flush()
}

// formatEndpointSlices is describe's helper of the same name for one port
// name: ready endpoints as ip:port, at most 3 then " + N more...", "<none>"
// without slices. Its quirk is kept: "more" is set as soon as 3 are listed
// and another endpoint follows, even one that is not ready.
func formatEndpointSlices(slices []discoveryv1.EndpointSlice, portName string) string {
	if len(slices) == 0 {
		return "<none>"
	}
	var list []string
	const max = 3
	more := false
	count := 0
	for _, sl := range slices {
		if len(sl.Ports) == 0 {
			for _, ep := range sl.Endpoints {
				if len(list) == max {
					more = true
				}
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					continue
				}
				if !more {
					list = append(list, ep.Addresses[0])
				}
				count++
			}
			continue
		}
		for _, port := range sl.Ports {
			if port.Name == nil || *port.Name != portName {
				continue
			}
			for _, ep := range sl.Endpoints {
				if len(list) == max {
					more = true
				}
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					continue
				}
				if !more {
					list = append(list, net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(*port.Port))))
				}
				count++
			}
		}
	}
	ret := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", ret, count-max)
	}
	return ret
}

// printLabels is describe's printLabelsMultiline.
func printLabels(w io.Writer, title string, m map[string]string) {
	fmt.Fprintf(w, "%s:\t", title)
	if len(m) == 0 {
		fmt.Fprintln(w, "<none>")
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i != 0 {
			fmt.Fprint(w, "\t")
		}
		fmt.Fprintf(w, "%s=%s\n", k, m[k])
	}
}

const maxAnnotationLen = 140

// printAnnotations is describe's printAnnotationsMultiline (it hides
// kubectl's last-applied-configuration).
func printAnnotations(w io.Writer, title string, m map[string]string) {
	fmt.Fprintf(w, "%s:\t", title)
	keys := make([]string, 0, len(m))
	for k := range m {
		if k == corev1.LastAppliedConfigAnnotation {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		fmt.Fprintln(w, "<none>")
		return
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i != 0 {
			fmt.Fprint(w, "\t")
		}
		v := strings.TrimSuffix(m[k], "\n")
		if len(v)+len(k)+2 > maxAnnotationLen || strings.Contains(v, "\n") {
			fmt.Fprintf(w, "%s:\n", k)
			for _, line := range strings.Split(v, "\n") {
				if len(line) > maxAnnotationLen-2 {
					line = line[:maxAnnotationLen-2-3] + "..."
				}
				fmt.Fprintf(w, "\t  %s\n", line)
			}
		} else {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
}
