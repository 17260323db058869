"""HJ 212 data packets, split packets, answers and the reported 2025 differences."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from carbonflow.domain.reporting.hj212 import (
    KNOWN_CNS_2025,
    MAX_CP_CHARS,
    MAX_SEGMENT_CHARS,
    ErrorReason,
    Hj212Error,
    Packet,
    Version,
    cp_to_text,
    frame,
    parse,
)
from carbonflow.domain.reporting.hj212_2025 import (
    encrypts,
    heartbeat,
    sm4_decode_cp,
    sm4_encode_cp,
)
from carbonflow.domain.reporting.hj212_flow import (
    CodeValues,
    DataFlag,
    ExeRtn,
    Identity,
    QnRtn,
    Suffix,
    data_answer,
    data_cp,
    data_packets,
    effluent_flag,
    execution_result,
    field_name,
    flue_gas_flag,
    history_request,
    is_answer_to,
    packet_count,
    quality_flag,
    reassemble,
    request_answer,
    split_field_name,
    wire_number,
)
from tests.domain.reporting import examples as ex

US = Identity(st="31", pw=ex.PW, mn=ex.MN)


def test_answers_reproduce_the_examples() -> None:
    assert frame(data_answer(parse(ex.E1), US).segment()) == ex.E2
    assert frame(request_answer(parse(ex.E4), US, QnRtn.READY).segment()) == ex.E5
    assert frame(execution_result(parse(ex.E4), US, ExeRtn.SUCCESS).segment()) == ex.E7
    assert is_answer_to(parse(ex.E2), parse(ex.E1))
    assert not is_answer_to(parse(ex.E5), parse(ex.E1))


def test_e3_is_built_from_its_values() -> None:
    # Daily data of 2025-06-14 (Beijing), labelled by the period start 00:00 (16:00 UTC before).
    cp = data_cp(
        datetime(2025, 6, 13, 16, tzinfo=UTC),
        [
            CodeValues("a00000", DataFlag.NORMAL, cou="3811968.0"),
            CodeValues("a05001", DataFlag.NORMAL, "482367.2", "98214.7", "126540.2", "141377.9"),
            CodeValues("a05002", DataFlag.NORMAL, "12007.7", "2210000.0", "3150000.0", "4870000.0"),
        ],
    )
    (packet,) = data_packets(US, "2031", cp, ["20250615000512347"])
    assert frame(packet.segment()) == ex.E3


def test_e6_split_packets_reassemble_into_one_upload() -> None:
    whole = reassemble([parse(ex.E6B), parse(ex.E6A)])
    assert whole.qn == "20250615091501105"
    assert (whole.flag, whole.pnum, whole.pno) == (5, None, None)
    assert [item[0][0] for item in whole.cp] == ["DataTime", "a00000-Cou", "a05001-Cou"]
    with pytest.raises(Hj212Error):
        reassemble([parse(ex.E6A)])  # PNO 2 of 2 missing


def test_a_large_upload_is_split_and_every_part_fits() -> None:
    values = [
        CodeValues(f"a{i:05d}", DataFlag.NORMAL, "1.0", "0.5", "1.0", "1.5") for i in range(40)
    ]
    cp = data_cp(datetime(2025, 6, 14, 2, tzinfo=UTC), values)
    count = packet_count(US, "2061", cp)
    assert count > 1
    parts = data_packets(US, "2061", cp, [f"2025061509150{i:04d}" for i in range(count)])
    for part in parts:
        assert part.flag == 7 and part.pnum == count
        assert len(cp_to_text(part.cp)) + len("CP=&&&&") <= MAX_CP_CHARS
        assert len(part.segment()) <= MAX_SEGMENT_CHARS
        assert part.cp[0] == (("DataTime", "20250614100000"),)
    assert reassemble(parse(frame(p.segment())) for p in parts).cp == cp
    with pytest.raises(ValueError, match="QNs"):
        data_packets(US, "2061", cp, ["20250615091500000"])


def test_field_names_and_flags() -> None:
    assert field_name("a05001", Suffix.AVG) == "a05001-Avg"
    assert split_field_name("a05002-Cou") == ("a05002", Suffix.COU)
    with pytest.raises(Hj212Error):
        split_field_name("a05002-Sum")
    # Flue gas: 3 of 4 normal is 75 % → N; 2 of 4 → D. Effluent: any abnormal wins.
    n, d, c = DataFlag.NORMAL, DataFlag.FAULT, DataFlag.CALIBRATION
    assert flue_gas_flag([n, n, n, c]) is n
    assert flue_gas_flag([n, n, c, c]) is d
    assert effluent_flag([n, c, n]) is c
    assert effluent_flag([n, n]) is n
    assert quality_flag("measured") is n
    assert quality_flag("estimated") is DataFlag.COMMUNICATION


def test_wire_numbers_round_half_up() -> None:
    assert wire_number(Decimal("126540.25"), 1) == "126540.3"
    assert wire_number(Decimal("0"), 2) == "0.00"
    assert wire_number(Decimal("1E+3"), 1) == "1000.0"


def test_history_request_of_e4() -> None:
    request = history_request(parse(ex.E4))
    assert request is not None
    # 02:00–03:00 Beijing is 18:00–19:00 UTC the day before.
    assert (request.cn, request.begin, request.end) == (
        "2061",
        datetime(2025, 6, 13, 18, tzinfo=UTC),
        datetime(2025, 6, 13, 19, tzinfo=UTC),
    )
    assert history_request(parse(ex.E1)) is None


KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")


def test_sm4_is_the_gbt_32907_cipher() -> None:
    # GB/T 32907-2016 Appendix A example 1: plaintext = key → 681EDF34D206965E86B3E94F536E4246.
    encryptor = Cipher(algorithms.SM4(KEY), modes.ECB()).encryptor()
    assert (encryptor.update(KEY) + encryptor.finalize()).hex().upper() == (
        "681EDF34D206965E86B3E94F536E4246"
    )


def test_a_2025_packet_with_encrypted_cp_round_trips() -> None:
    identity = Identity(st="44", pw="530719", mn="PLATFORM-ASSIGNED-01", version=Version.HJ212_2025)
    cp = data_cp(datetime(2025, 6, 14, 2, tzinfo=UTC), [CodeValues("e1", DataFlag.NORMAL, "1")])
    (packet,) = data_packets(identity, "2061", cp, ["20260614100000000"])
    assert packet.flag == 9  # version bits 000010, A = 1
    assert encrypts(Version.HJ212_2025, "2061") and not encrypts(Version.HJ212_2017, "2061")
    wire = frame(packet.segment(sm4_encode_cp(KEY)))
    assert b"DataTime" not in wire
    assert parse(wire, decode_cp=sm4_decode_cp(KEY)) == packet
    with pytest.raises(Hj212Error) as caught:
        parse(wire, decode_cp=sm4_decode_cp(bytes(16)))
    assert caught.value.reason is ErrorReason.MALFORMED_SEGMENT
    # 16 bytes of CP text are one SM4 block; 17 are two (zero padding, to be checked).
    assert len(sm4_encode_cp(KEY)("x" * 16)) == 32
    assert len(sm4_encode_cp(KEY)("x" * 17)) == 64


def test_the_2025_heartbeat() -> None:
    beat = heartbeat("20260101000000000", "44", "530719", "PLATFORM-ASSIGNED-01")
    assert parse(frame(beat.segment()), cns=KNOWN_CNS_2025) == beat
    assert beat.flag == 8 and not beat.wants_answer
    assert isinstance(beat, Packet)


def test_an_encrypted_upload_is_split_by_its_size_on_the_wire() -> None:
    # 40 codes: ~1 400 plain CP characters, about twice as many as SM4 hex.
    encode = sm4_encode_cp(KEY)
    identity = Identity("44", "1", "M1", Version.HJ212_2025, encode_cp=encode)
    values = [
        CodeValues(f"a{i:05d}", DataFlag.NORMAL, "1.0", "0.5", "1.0", "1.5") for i in range(40)
    ]
    cp = data_cp(datetime(2026, 1, 1, tzinfo=UTC), values)
    count = packet_count(identity, "2061", cp)
    plain = Identity("44", "1", "M1", Version.HJ212_2025)
    assert count > packet_count(plain, "2061", cp)
    parts = data_packets(identity, "2061", cp, [f"2026010108000{i:04d}" for i in range(count)])
    wires = [frame(p.segment(encode)) for p in parts]
    assert all(len(w) <= 1036 for w in wires)
    decode = sm4_decode_cp(KEY)
    assert reassemble(parse(w, decode_cp=decode) for w in wires).cp == cp
