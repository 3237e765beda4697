package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"
)

// checkPeerSANs makes a peer listener's TLS config check, as etcd's peer
// listener does unless --peer-skip-client-san-verification, that the
// connecting member's certificate names the address it connects from: one
// of its IP SANs is that address, or one of its DNS SANs resolves to it. A
// certificate with no SANs passes, as in etcd.
//
// The remote address is only known per connection, so the check is a
// VerifyConnection of a per-connection copy of cfg (GetConfigForClient).
func checkPeerSANs(cfg *tls.Config) *tls.Config {
	out := cfg.Clone()
	out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := cfg.Clone()
		remote := hello.Conn.RemoteAddr().String()
		c.VerifyConnection = func(st tls.ConnectionState) error {
			if len(st.PeerCertificates) == 0 {
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return checkCertSAN(ctx, st.PeerCertificates[0], remote)
		}
		return c, nil
	}
	return out
}

// checkCertSAN is etcd's check of a certificate against the address its
// holder connected from, with etcd's errors.
func checkCertSAN(ctx context.Context, cert *x509.Certificate, remoteAddr string) error {
	if len(cert.IPAddresses) == 0 && len(cert.DNSNames) == 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return err
	}
	if len(cert.IPAddresses) > 0 {
		verr := cert.VerifyHostname(host)
		if verr == nil {
			return nil
		}
		if len(cert.DNSNames) == 0 {
			return verr
		}
	}
	ok, lerr := hostInDNS(ctx, host, cert.DNSNames)
	if ok {
		return nil
	}
	detail := ""
	if lerr != nil {
		detail = " (" + lerr.Error() + ")"
	}
	return fmt.Errorf("tls: %q does not match any of DNSNames %q"+detail, host, cert.DNSNames)
}

// hostInDNS reports whether host is one of the addresses dnsNames resolve
// to, or (for wildcard names) whether a name host reverse-resolves to
// falls under one of them.
func hostInDNS(ctx context.Context, host string, dnsNames []string) (bool, error) {
	var names, wildcards []string
	for _, n := range dnsNames {
		if strings.HasPrefix(n, "*.") {
			wildcards = append(wildcards, n[1:])
		} else {
			names = append(names, n)
		}
	}
	var lastErr error
	if len(wildcards) > 0 {
		rev, err := net.DefaultResolver.LookupAddr(ctx, host)
		lastErr = err
		for _, r := range rev {
			r = strings.TrimSuffix(r, ".")
			for _, w := range wildcards {
				if strings.HasSuffix(r, w) {
					return true, nil
				}
			}
		}
	}
	for _, n := range names {
		addrs, err := net.DefaultResolver.LookupHost(ctx, n)
		if err != nil {
			lastErr = err
			continue
		}
		for _, a := range addrs {
			if a == host {
				return true, nil
			}
		}
	}
	return false, lastErr
}
