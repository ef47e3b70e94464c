package domainxml

import (
	"strings"
	"testing"
)

func TestInterfaceXMLAndLiveLookups(t *testing.T) {
	x, err := InterfaceXML(NIC{Network: "godwit-lab", MAC: "52:54:00:00:00:01"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<interface type="network">`, `<mac address="52:54:00:00:00:01">`, `<source network="godwit-lab">`, `<model type="virtio">`} {
		if !strings.Contains(x, want) {
			t.Errorf("%s lacks %s", x, want)
		}
	}
	if _, err := InterfaceXML(NIC{MAC: "52:54:00:00:00:01"}); err == nil {
		t.Error("a NIC without network")
	}
	live := `<domain><devices><interface type='network'><mac address='52:54:00:AA:00:01'/><source network='n'/><target dev='vnet7'/></interface></devices></domain>`
	if got := TapDevices(live)["52:54:00:aa:00:01"]; got != "vnet7" {
		t.Errorf("TapDevices = %q", got)
	}
	if !HasInterface(live, "52:54:00:aa:00:01") || HasInterface(live, "52:54:00:aa:00:02") {
		t.Error("HasInterface")
	}
}
