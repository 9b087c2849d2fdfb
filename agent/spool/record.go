package spool

import (
	"encoding/binary"
	"hash/crc32"
)

// headerSize is the fixed part of a record: length, CRC, seq (see doc.go).
const headerSize = 16

// castagnoli is CRC-32C, which amd64 and arm64 compute in hardware.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type header struct {
	length uint32 // bytes of data after the header
	crc    uint32 // CRC-32C of the seq bytes and the data
	seq    uint64
}

// putHeader encodes the header of a record holding data at seq into b[:16].
func putHeader(b []byte, seq uint64, data []byte) {
	binary.LittleEndian.PutUint32(b[0:4], uint32(len(data)))
	binary.LittleEndian.PutUint64(b[8:16], seq)
	binary.LittleEndian.PutUint32(b[4:8], crc32.Update(seqCRC(b), castagnoli, data))
}

func parseHeader(b []byte) header {
	return header{
		length: binary.LittleEndian.Uint32(b[0:4]),
		crc:    binary.LittleEndian.Uint32(b[4:8]),
		seq:    binary.LittleEndian.Uint64(b[8:16]),
	}
}

// seqCRC starts a record's CRC: the checksum of the seq bytes of header b.
// Callers continue it over the data with crc32.Update.
func seqCRC(b []byte) uint32 { return crc32.Checksum(b[8:16], castagnoli) }
