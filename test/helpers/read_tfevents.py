#!/usr/bin/env python3
"""An independent reader of TensorBoard event files, for Keel's tests.

Reads TFRecord framing (uint64 length, masked CRC-32C of the length, data,
masked CRC-32C of the data), checks every CRC with its own CRC-32C table, and
decodes each record as tensorflow.Event with Debian's python3-protobuf. The
message types are declared here from the published field numbers of
tensorflow/core/util/event.proto and tensorflow/core/framework/
{summary,tensor,tensor_shape}.proto (no TensorFlow needed).

Prints one JSON object per event; non-finite floats as the strings
"NaN", "Infinity", "-Infinity". Exits 1 on a bad CRC or a torn record.
"""
import json
import math
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf import message_factory

F = descriptor_pb2.FieldDescriptorProto


def _crc_table():
    poly = 0x82F63B78  # CRC-32C (Castagnoli), reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _msg(fdp, name, fields):
    m = fdp.message_type.add()
    m.name = name
    for fname, number, ftype, label, type_name in fields:
        f = m.field.add()
        f.name = fname
        f.number = number
        f.type = ftype
        f.label = label
        if type_name:
            f.type_name = type_name
    return m


def _classes():
    fdp = descriptor_pb2.FileDescriptorProto()
    fdp.name = 'keel_test_event.proto'
    fdp.package = 'tensorflow'
    fdp.syntax = 'proto3'
    OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    _msg(fdp, 'TensorShapeProto', [])
    dim = fdp.message_type[0].nested_type.add()
    dim.name = 'Dim'
    for fname, number, ftype in (('size', 1, F.TYPE_INT64), ('name', 2, F.TYPE_STRING)):
        f = dim.field.add(); f.name = fname; f.number = number; f.type = ftype; f.label = OPT
    f = fdp.message_type[0].field.add()
    f.name = 'dim'; f.number = 2; f.type = F.TYPE_MESSAGE; f.label = REP; f.type_name = '.tensorflow.TensorShapeProto.Dim'
    f = fdp.message_type[0].field.add()
    f.name = 'unknown_rank'; f.number = 3; f.type = F.TYPE_BOOL; f.label = OPT
    _msg(fdp, 'TensorProto', [
        ('dtype', 1, F.TYPE_INT32, OPT, None),  # enum DataType; DT_STRING = 7
        ('tensor_shape', 2, F.TYPE_MESSAGE, OPT, '.tensorflow.TensorShapeProto'),
        ('float_val', 5, F.TYPE_FLOAT, REP, None),
        ('double_val', 6, F.TYPE_DOUBLE, REP, None),
        ('string_val', 8, F.TYPE_BYTES, REP, None),
    ])
    _msg(fdp, 'HistogramProto', [
        ('min', 1, F.TYPE_DOUBLE, OPT, None),
        ('max', 2, F.TYPE_DOUBLE, OPT, None),
        ('num', 3, F.TYPE_DOUBLE, OPT, None),
        ('sum', 4, F.TYPE_DOUBLE, OPT, None),
        ('sum_squares', 5, F.TYPE_DOUBLE, OPT, None),
        ('bucket_limit', 6, F.TYPE_DOUBLE, REP, None),
        ('bucket', 7, F.TYPE_DOUBLE, REP, None),
    ])
    _msg(fdp, 'PluginData', [
        ('plugin_name', 1, F.TYPE_STRING, OPT, None),
        ('content', 2, F.TYPE_BYTES, OPT, None),
    ])
    _msg(fdp, 'SummaryMetadata', [
        ('plugin_data', 1, F.TYPE_MESSAGE, OPT, '.tensorflow.PluginData'),
        ('display_name', 2, F.TYPE_STRING, OPT, None),
        ('summary_description', 3, F.TYPE_STRING, OPT, None),
    ])
    _msg(fdp, 'SummaryValue', [
        ('tag', 1, F.TYPE_STRING, OPT, None),
        ('simple_value', 2, F.TYPE_FLOAT, OPT, None),
        ('histo', 5, F.TYPE_MESSAGE, OPT, '.tensorflow.HistogramProto'),
        ('node_name', 7, F.TYPE_STRING, OPT, None),
        ('tensor', 8, F.TYPE_MESSAGE, OPT, '.tensorflow.TensorProto'),
        ('metadata', 9, F.TYPE_MESSAGE, OPT, '.tensorflow.SummaryMetadata'),
    ])
    _msg(fdp, 'Summary', [('value', 1, F.TYPE_MESSAGE, REP, '.tensorflow.SummaryValue')])
    _msg(fdp, 'Event', [
        ('wall_time', 1, F.TYPE_DOUBLE, OPT, None),
        ('step', 2, F.TYPE_INT64, OPT, None),
        ('file_version', 3, F.TYPE_STRING, OPT, None),
        ('summary', 5, F.TYPE_MESSAGE, OPT, '.tensorflow.Summary'),
    ])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName('tensorflow.Event')
    if hasattr(message_factory, 'GetMessageClass'):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def num(x):
    if math.isnan(x):
        return 'NaN'
    if math.isinf(x):
        return 'Infinity' if x > 0 else '-Infinity'
    return x


def main(path):
    Event = _classes()
    data = open(path, 'rb').read()
    pos = 0
    records = 0
    while pos < len(data):
        if pos + 12 > len(data):
            print(f'torn header at byte {pos}', file=sys.stderr)
            return 1
        header = data[pos:pos + 8]
        (length,) = struct.unpack('<Q', header)
        (hcrc,) = struct.unpack('<I', data[pos + 8:pos + 12])
        if hcrc != masked(header):
            print(f'record {records}: bad length CRC', file=sys.stderr)
            return 1
        body = data[pos + 12:pos + 12 + length]
        if len(body) != length or pos + 16 + length > len(data):
            print(f'record {records}: torn body', file=sys.stderr)
            return 1
        (dcrc,) = struct.unpack('<I', data[pos + 12 + length:pos + 16 + length])
        if dcrc != masked(body):
            print(f'record {records}: bad data CRC', file=sys.stderr)
            return 1
        pos += 16 + length
        records += 1
        ev = Event()
        ev.ParseFromString(body)
        out = {'wall_time': ev.wall_time, 'step': ev.step}
        if ev.file_version:
            out['file_version'] = ev.file_version
        values = []
        for v in ev.summary.value:
            item = {'tag': v.tag}
            if v.HasField('histo'):
                h = v.histo
                item['histo'] = {'min': num(h.min), 'max': num(h.max), 'num': h.num, 'sum': num(h.sum),
                                 'sum_squares': num(h.sum_squares), 'bucket_limit': [num(x) for x in h.bucket_limit],
                                 'bucket': list(h.bucket)}
            elif v.HasField('tensor'):
                item['plugin'] = v.metadata.plugin_data.plugin_name
                item['dtype'] = v.tensor.dtype
                item['text'] = [s.decode('utf-8') for s in v.tensor.string_val]
            else:
                item['simple_value'] = num(v.simple_value)
            values.append(item)
        if values:
            out['values'] = values
        print(json.dumps(out))
    print(json.dumps({'records': records}))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
