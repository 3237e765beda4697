package config

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"go.etcd.io/etcd/pkg/v3/flags"
	"sigs.k8s.io/yaml"
)

// fileConfig is the config file's shape: etcd 3.7's configYAML. The
// Config's own json names apply, except where a key here (shallower)
// shadows one: URL lists and CORS as comma-separated strings, TLS in two
// nested blocks, as etcd's file has them.
type fileConfig struct {
	*Config
	ListenPeerURLs       string  `json:"listen-peer-urls"`
	ListenClientURLs     string  `json:"listen-client-urls"`
	ListenClientHTTPURLs string  `json:"listen-client-http-urls"`
	ListenMetricsURLs    string  `json:"listen-metrics-urls"`
	AdvertisePeerURLs    string  `json:"initial-advertise-peer-urls"`
	AdvertiseClientURLs  string  `json:"advertise-client-urls"`
	CORS                 string  `json:"cors"`
	HostWhitelist        string  `json:"host-whitelist"`
	ClientSecurity       fileTLS `json:"client-transport-security"`
	PeerSecurity         fileTLS `json:"peer-transport-security"`
}

// fileTLS is a *-transport-security block (etcd's securityConfig).
type fileTLS struct {
	CertFile            string   `json:"cert-file"`
	KeyFile             string   `json:"key-file"`
	ClientCertFile      string   `json:"client-cert-file"`
	ClientKeyFile       string   `json:"client-key-file"`
	ClientCertAuth      bool     `json:"client-cert-auth"`
	TrustedCAFile       string   `json:"trusted-ca-file"`
	AutoTLS             bool     `json:"auto-tls"`
	AllowedCNs          []string `json:"allowed-cn"`
	AllowedHostnames    []string `json:"allowed-hostname"`
	SkipClientSANVerify bool     `json:"skip-client-san-verification"`
}

func (t fileTLS) tls(crl string) TLS {
	return TLS{
		CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCertFile: t.ClientCertFile, ClientKeyFile: t.ClientKeyFile,
		ClientCertAuth: t.ClientCertAuth, TrustedCAFile: t.TrustedCAFile, AutoTLS: t.AutoTLS,
		AllowedCNs: t.AllowedCNs, AllowedHostnames: t.AllowedHostnames, SkipClientSANVerify: t.SkipClientSANVerify,
		CRLFile: crl,
	}
}

// etcdFileKeys are keys of etcd's sample config file (etcd 2's v2
// discovery and proxy) that etcd 3.7 reads past without a word; so does
// MetaStore, so that the sample starts a member — as long as they ask for
// nothing (see v2Settings).
var etcdFileKeys = map[string]bool{
	"discovery": true, "discovery-fallback": true, "discovery-proxy": true, "proxy": true,
	"proxy-failure-wait": true, "proxy-refresh-interval": true, "proxy-dial-timeout": true,
	"proxy-write-timeout": true, "proxy-read-timeout": true,
}

// v2Settings refuses a file that asks for v2 discovery or the v2 proxy:
// etcd 3.7 skips those keys and bootstraps a one-member cluster of its
// own, a split brain when the file meant to join others.
func v2Settings(keys map[string]any) error {
	for _, k := range []string{"discovery", "discovery-proxy"} {
		if v, ok := keys[k].(string); ok && v != "" {
			return fmt.Errorf("%s: v2 discovery is not supported (etcd 3.7 ignores it and starts a one-member cluster); use discovery-token and discovery-endpoints (v3 discovery) or initial-cluster", k)
		}
	}
	// YAML 1.1 reads an unquoted on/off as a boolean.
	switch v := fmt.Sprint(keys["proxy"]); v {
	case "<nil>", "", "off", "false":
	default:
		return fmt.Errorf("proxy: %q: the v2 proxy is not supported (etcd 3.7 removed it)", v)
	}
	return nil
}

// fromFile reads the YAML file at path over the defaults, with etcd's
// rules: keys it does not know are skipped (unknownKeys lists them, for a
// warning), empty URL lists keep their defaults, and the initial cluster
// is left to discovery when discovery is configured.
func (c *Config) fromFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	c.ConfigFile = path
	f := fileConfig{Config: c}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return err
	}
	var keys map[string]any
	if err := yaml.Unmarshal(b, &keys); err != nil {
		return err
	}
	if err := v2Settings(keys); err != nil {
		return err
	}
	for k := range keys {
		c.Explicit[k] = true
	}
	if peer, ok := keys["peer-transport-security"]; ok {
		m, isMap := peer.(map[string]any)
		if !isMap && peer != nil {
			return fmt.Errorf("invalid peer-transport-security")
		}
		for k := range m {
			c.Explicit["peer-"+k] = true
		}
	}
	for _, u := range []struct {
		name string
		val  string
		dst  *[]string
	}{
		{"listen-peer-urls", f.ListenPeerURLs, &c.ListenPeerURLs},
		{"listen-client-urls", f.ListenClientURLs, &c.ListenClientURLs},
		{"listen-client-http-urls", f.ListenClientHTTPURLs, &c.ListenClientHTTPURLs},
		{"initial-advertise-peer-urls", f.AdvertisePeerURLs, &c.AdvertisePeerURLs},
		{"advertise-client-urls", f.AdvertiseClientURLs, &c.AdvertiseClientURLs},
		{"listen-metrics-urls", f.ListenMetricsURLs, &c.ListenMetricsURLs},
	} {
		if u.val == "" {
			continue
		}
		urls, err := parseURLs(u.val)
		if err != nil {
			return fmt.Errorf("unexpected error setting up %s: %w", u.name, err)
		}
		*u.dst = urls
	}
	if f.CORS != "" {
		c.CORS = flags.NewUniqueURLsWithExceptions(f.CORS, "*").Values
	}
	if f.HostWhitelist != "" {
		c.HostWhitelist = flags.NewUniqueStringsValue(f.HostWhitelist).Values
	}
	// The file has no CRL keys: etcd's file cannot set them either.
	c.ClientTLS = f.ClientSecurity.tls("")
	c.PeerTLS = f.PeerSecurity.tls("")
	if c.InitialClusterState == "" {
		c.InitialClusterState = "new"
	}
	if c.SelfSignedCertValidity == 0 {
		c.SelfSignedCertValidity = 1
	}
	if (c.DiscoverySRV != "" || len(c.Discovery.Client.Endpoints) > 0) && !keysSet(keys, "initial-cluster") {
		c.InitialCluster = ""
	}
	c.unknownKeys = unknownKeys(keys)
	return nil
}

func keysSet(keys map[string]any, k string) bool {
	v, ok := keys[k]
	return ok && v != nil && v != ""
}

// unknownKeys are the file's top-level keys that name no setting (a
// typo, or a setting of another etcd version), sorted.
func unknownKeys(keys map[string]any) []string {
	known := map[string]bool{}
	for _, t := range []any{Config{}, fileConfig{}} {
		b, _ := json.Marshal(t)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		for k := range m {
			known[k] = true
		}
	}
	var out []string
	for k := range keys {
		if !known[k] && !etcdFileKeys[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// parseURLs parses a comma-separated URL list as etcd's types.NewURLs
// does: each must have a scheme and a host:port.
func parseURLs(s string) ([]string, error) {
	var u flags.URLsValue
	if err := u.Set(s); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(u))
	for _, x := range u {
		out = append(out, x.String())
	}
	return out, nil
}
