package redisurl

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParse_EachSchemeSelectsItsTopology(t *testing.T) {
	for _, tc := range []struct {
		url   string
		check func(t *testing.T, o *Options)
	}{
		{"redis://localhost:6379/3", func(t *testing.T, o *Options) {
			if o.Topology != Single || o.Single.Addr != "localhost:6379" || o.Single.DB != 3 || o.Single.TLSConfig != nil {
				t.Errorf("got %s %+v", o.Topology, o.Single)
			}
		}},
		{"rediss://u:p@cache.example:6380/0", func(t *testing.T, o *Options) {
			if o.Topology != Single || o.Single.TLSConfig == nil || o.Single.Username != "u" || o.Single.Password != "p" {
				t.Errorf("got %s %+v", o.Topology, o.Single)
			}
		}},
		{"redis-sentinel://app:p%40ss%2Fw@s1:26379,s2,s3:26380/mymaster?db=2&sentinel_password=sp&dial_timeout=3s", func(t *testing.T, o *Options) {
			f := o.Failover
			if o.Topology != Sentinel || f.MasterName != "mymaster" || f.DB != 2 || f.TLSConfig != nil {
				t.Errorf("got %s %+v", o.Topology, f)
			}
			if want := []string{"s1:26379", "s2:26379", "s3:26380"}; !slices.Equal(f.SentinelAddrs, want) {
				t.Errorf("sentinels %v, want %v", f.SentinelAddrs, want)
			}
			if f.Username != "app" || f.Password != "p@ss/w" || f.SentinelUsername != "" || f.SentinelPassword != "sp" {
				t.Errorf("credentials: data %q/%q, sentinel %q/%q", f.Username, f.Password, f.SentinelUsername, f.SentinelPassword)
			}
			if f.DialTimeout != 3*time.Second {
				t.Errorf("dial timeout %s, want 3s (go-redis's own parameters pass through)", f.DialTimeout)
			}
		}},
		{"rediss-sentinel://sentinel.example/main", func(t *testing.T, o *Options) {
			if o.Topology != Sentinel || o.Failover.TLSConfig == nil || o.Failover.Password != "" || o.Failover.DB != 0 {
				t.Errorf("got %s %+v", o.Topology, o.Failover)
			}
		}},
		{"redis-cluster://u:p@n1:7000,n2:7001,n3", func(t *testing.T, o *Options) {
			c := o.Cluster
			if want := []string{"n1:7000", "n2:7001", "n3:6379"}; o.Topology != Cluster || !slices.Equal(c.Addrs, want) {
				t.Errorf("got %s %v, want cluster %v", o.Topology, c.Addrs, want)
			}
			if c.Username != "u" || c.Password != "p" || c.TLSConfig != nil || c.ReadOnly {
				t.Errorf("got %+v", c)
			}
			if c.ClusterStateReloadInterval != DefaultClusterStateReload {
				t.Errorf("state reload %s, want %s", c.ClusterStateReloadInterval, DefaultClusterStateReload)
			}
		}},
		{"rediss-cluster://n1:7000/0?pool_size=7", func(t *testing.T, o *Options) {
			if o.Topology != Cluster || o.Cluster.TLSConfig == nil || o.Cluster.PoolSize != 7 {
				t.Errorf("got %s %+v", o.Topology, o.Cluster)
			}
		}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			o, err := Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
			if c := o.NewClient(); c == nil {
				t.Fatal("no client")
			} else {
				c.Close()
			}
		})
	}
}

func TestParse_BadURLIsRefusedWithoutQuotingIt(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"localhost:6379", "not a URL"},
		{"http://secret@localhost", "unknown scheme"},
		{"redis://user:secret@host:port/0", "invalid port"},
		{"redis-sentinel://:secret@s1:26379", "master's name"},
		{"redis-sentinel://s1:26379/a/b", "master's name"},
		{"redis-sentinel://s1,,s2/m", "empty address"},
		{"redis-sentinel://s1/m?replica_only=true", "replica_only"},
		{"redis-sentinel://s1/m?password=secret", "option password"},
		{"redis-sentinel://s1/m?db=x", "database"},
		{"redis-cluster://:secret@n1:7000/1", "only database 0"},
		{"redis-cluster://n1:7000?read_only=true", "read_only"},
		{"redis-cluster://n1:7000?route_randomly=true", "route_randomly"},
		{"redis-cluster://n1:7000?bogus=1", "unexpected option"},
		{"redis-cluster://n1:x:y", "bad address"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := Parse(tc.url)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q quotes the password", err)
			}
		})
	}
}
