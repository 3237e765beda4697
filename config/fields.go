package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// LogFields is every setting the member runs with, one field per setting
// under its etcd name, for the line logged at start (as etcd's "starting
// an etcd server"): what an operator reads to know what a member really
// runs with, whatever mix of flags, variables and file set it. Secrets
// (the discovery password) are not logged.
func (c *Config) LogFields() []zap.Field {
	fields := []zap.Field{
		zap.Strings("listen-peer-urls", c.ListenPeerURLs),
		zap.Strings("listen-client-urls", c.ListenClientURLs),
		zap.Strings("listen-client-http-urls", c.ListenClientHTTPURLs),
		zap.Strings("listen-metrics-urls", c.ListenMetricsURLs),
		zap.Strings("initial-advertise-peer-urls", c.AdvertisePeerURLs),
		zap.Strings("advertise-client-urls", c.AdvertiseClientURLs),
		zap.Strings("cors", keys(c.CORS)),
		zap.Strings("host-whitelist", keys(c.HostWhitelist)),
		zap.Any("client-transport-security", c.ClientTLS),
		zap.Any("peer-transport-security", c.PeerTLS),
		zap.String("discovery-fallback", c.DiscoveryFallback),
		zap.Duration("raft-read-timeout", c.RaftReadTimeout),
		zap.Duration("raft-write-timeout", c.RaftWriteTimeout),
		zap.String("config-file", c.ConfigFile),
	}
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		switch f := v.Field(i).Interface().(type) {
		case time.Duration:
			fields = append(fields, zap.Duration(name, f))
		case Discovery:
			f.Client.Auth.Password = redact(f.Client.Auth.Password)
			fields = append(fields, zap.Any(name, f))
		default:
			fields = append(fields, zap.Any(name, f))
		}
	}
	return fields
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "***"
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// fieldString is a logged setting's value as text: a duration as Go
// writes it, anything else as JSON.
func fieldString(f zap.Field) string {
	enc := zapcore.NewMapObjectEncoder()
	f.AddTo(enc)
	v := enc.Fields[f.Key]
	if d, ok := v.(time.Duration); ok {
		return d.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
