package wire

import (
	"hash/crc32"
	"net/netip"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// bep42CRC is the CRC32-C of an IPv4 address masked as BEP 42 says, with
// the 3 random bits r on top.
func bep42CRC(ip netip.Addr, r byte) uint32 {
	a := ip.Unmap().As4()
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) & 0x030f3fff
	v |= uint32(r&7) << 29
	b := [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	return crc32.Checksum(b[:], castagnoli)
}

// BEP42ID turns id into a node ID that BEP 42 allows for the IPv4 address
// ip: the first 21 bits come from the CRC of the address, the last byte is
// the random r used. The other bytes of id are kept.
func BEP42ID(id ID, ip netip.Addr, r byte) ID {
	crc := bep42CRC(ip, r)
	id[0] = byte(crc >> 24)
	id[1] = byte(crc >> 16)
	id[2] = byte(crc>>8)&0xf8 | id[2]&7
	id[19] = r
	return id
}

// BEP42Valid reports whether id is a node ID BEP 42 allows at ip. Addresses
// BEP 42 exempts (loopback, private, link-local; anything not IPv4) are
// always valid.
func BEP42Valid(id ID, ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.Is4() || BEP42Exempt(ip) {
		return true
	}
	crc := bep42CRC(ip, id[19])
	return id[0] == byte(crc>>24) && id[1] == byte(crc>>16) && id[2]&0xf8 == byte(crc>>8)&0xf8
}

// BEP42Exempt reports whether BEP 42 leaves ip out: local and private
// networks.
func BEP42Exempt(ip netip.Addr) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()
}
