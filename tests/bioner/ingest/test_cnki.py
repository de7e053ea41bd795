"""CNKI exports: the four dialects, encodings, stable ids, clean-up, quarantine, real samples."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from pathlib import Path

import pytest

from bioner.errors import InputError
from bioner.ingest.cnki import (
    NO_RECORDS,
    clean_abstract,
    clean_text,
    cnki_id,
    decode_cnki,
    detect_cnki_dialect,
    iso_date,
    read_cnki,
    read_cnki_endnote,
    read_cnki_estudy,
    read_cnki_noteexpress,
    read_cnki_refworks,
    split_list,
)
from bioner.ingest.types import Quarantined
from bioner.records import Document, Section

# One real record (from the E-Study sample, abstract shortened) in the four dialects.
TITLE = "应用FRAX评价乳腺癌术后患者骨折风险的临床研究"
AUTHORS = ("王东岩", "林红晓", "金雨")
JOURNAL = "中国骨质疏松杂志"
FRAX_ID = "cnki:26bff81b395ada51"
OBJECTIVE = (
    "目的应用骨折风险评估工具(fracture risk assessment tool,FRAX)评价乳腺癌术后患者骨折风险。"
)
METHODS = "方法选取181例乳腺癌术后女性作为观察组。"
RESULTS = "结果观察组骨折概率高于对照组(P<0.05)。"
CONCLUSION = "结论应用FRAX工具评估骨折风险尚需进一步研究。"
ABSTRACT = OBJECTIVE + METHODS + RESULTS + CONCLUSION

ESTUDY = f"""DataType: 1
Title-题名: {TITLE}
Author-作者: 王东岩;林红晓;金雨;
Source-刊名: {JOURNAL}
Year-年: 2021
PubTime-出版时间: 2021-01-15
Keyword-关键词: 骨折风险评估工具;骨质疏松;乳腺癌;骨密度
Summary-摘要: {ABSTRACT}
Period-期: 01
Roll-卷: 27
PageCount-页数: 4
Page-页码: 101-104
SrcDatabase-来源库: 期刊
Organ-机构: 连云港市第一人民医院骨质疏松科;
Link-链接: https://kns.cnki.net/kcms/detail/detail.aspx?FileName=ZGZS202101023&DbName=CJFQTEMP
DataType: 1
Title-题名: 保乳手术治疗早期乳腺癌的效果观察
Author-作者: 周景新;
Source-刊名: 当代医学
PubTime-出版时间: 2021-01-14 16:07
Keyword-关键词: 早期乳腺癌;改良根治术
Summary-摘要: <正>保乳手术是早期乳腺癌的标准术式之一。
SrcDatabase-来源库: 期刊
"""

NOTEEXPRESS = f"""{{Reference Type}}: Journal Article
{{Title}}: {TITLE}
{{Author}}: 王东岩;林红晓;金雨;
{{Author Address}}: 连云港市第一人民医院骨质疏松科;
{{Journal}}: {JOURNAL}
{{Year}}: 2021
{{Volume}}: 27
{{Issue}}: 01
{{Pages}}: 101-104
{{Keywords}}: 骨折风险评估工具;;骨质疏松;;乳腺癌;;骨密度
{{Abstract}}：{ABSTRACT}
{{ISBN/ISSN}}: 1006-7108
{{Notes}}: 11-3701/R
{{Database Provider}}: CNKI

"""

# CNKI's EndNote export: one %A per author, %+ affiliations, %@ ISSN, %L CN number, %W CNKI,
# (#br) between the parts of a structured abstract; a blank line after each record.
ENDNOTE = f"""%0 Journal Article
%A 王东岩
%A 林红晓
%A 金雨
%+ 连云港市第一人民医院骨质疏松科;
%T {TITLE}
%J {JOURNAL}
%D 2021
%V 27
%N 01
%K 骨折风险评估工具;骨质疏松;乳腺癌;骨密度
%X {OBJECTIVE}(#br){METHODS}(#br){RESULTS}(#br){CONCLUSION}
%P 101-104
%@ 1006-7108
%L 11-3701/R
%W CNKI

%0 Journal Article
%A 王奕丹
%A 刘丽梅
%+ 北华大学医学技术学院实验中心;
%T DNA甲基转移酶3b对乳腺癌细胞微小RNA表达的影响
%J 中国医科大学学报
%D 2021
%8 2021-01-13 15:56
%K DNA甲基转移酶3b;乳腺癌;微小RNA
%X 目的：探讨Dnmt3b对miRNA的影响。(#br)方法：高通量测序检测miRNA表达。(#br)结果：miR-200a表达上调（P&lt;0.05）。(#br)结论：Dnmt3b影响miRNA表达。
%P 1-8
%@ 0258-4646
%R 10.12007/j.issn.0258-4646.2021.01.001
%U https://kns.cnki.net/kcms/detail/21.1227.R.20210112.1612.004.html
%W CNKI

"""

# CNKI's RefWorks export: authors in one A1 line, "vo" in lower case, LA and DS lines.
REFWORKS = f"""RT Journal Article
SR 1
A1 王东岩;林红晓;金雨;
AD 连云港市第一人民医院骨质疏松科;
T1 {TITLE}
JF {JOURNAL}
YR 2021
IS 01
vo 27
OP 101-104
K1 骨折风险评估工具;骨质疏松;乳腺癌;骨密度
AB {ABSTRACT}
SN 1006-7108
CN 11-3701/R
LA 中文;
DS CNKI
LK https://kns.cnki.net/kcms/detail/detail.aspx?FileName=ZGZS202101023&DbName=CJFQ2021

RT Journal Article
SR 1
A1 Noh, Youngre;
T1 Does converting abandoned railways to greenways impact neighboring housing prices?
JF Landscape and Urban Planning
YR 2019
vo 183
K1 Greenway;Railroad;Property value
AB This research examines the housing market before and after abandoned railways are converted into greenways.
LA 英文;
DS CNKI
DO 10.1016/j.landurbplan.2018.11.005

"""


def documents(items):
    return [i for i in items if isinstance(i, Document)]


def quarantined(items):
    return [i for i in items if isinstance(i, Quarantined)]


# --- the four dialects --------------------------------------------------------------------------


def test_estudy_record_fields():
    first, second = read_cnki(ESTUDY.encode(), source="x.txt")
    assert first == Document(
        id=FRAX_ID,
        text=f"{TITLE} {ABSTRACT}",
        title=TITLE,
        language="zh",
        source="x.txt",
        metadata=(
            ("format", "cnki-estudy"),
            ("cnki_filename", "ZGZS202101023"),
            ("cnki_datatype", "1"),
            ("volume", "27"),
            ("issue", "01"),
            ("pages", "101-104"),
            ("affiliations", "连云港市第一人民医院骨质疏松科"),
            (
                "url",
                "https://kns.cnki.net/kcms/detail/detail.aspx?FileName=ZGZS202101023&DbName=CJFQTEMP",
            ),
        ),
        journal=JOURNAL,
        pub_date="2021-01-15",
        authors=AUTHORS,
        keywords=("骨折风险评估工具", "骨质疏松", "乳腺癌", "骨密度"),
        publication_types=("Journal Article",),
        sections=_frax_sections(),
    )
    # no Year field: the year of PubTime; "<正>" dropped
    assert second.pub_date == "2021-01-14"
    assert second.text == "保乳手术治疗早期乳腺癌的效果观察 保乳手术是早期乳腺癌的标准术式之一。"
    assert second.sections == (
        Section("TITLE", 0, 16),
        Section("ABSTRACT", 17, len(second.text)),
    )


def _frax_sections(sep: str = "") -> tuple[Section, ...]:
    """TITLE and the four labelled parts, joined by ``sep`` (a space where (#br) was)."""
    sections = [Section("TITLE", 0, len(TITLE))]
    start = len(TITLE) + 1
    for label, category, part in [
        ("目的", "OBJECTIVE", OBJECTIVE),
        ("方法", "METHODS", METHODS),
        ("结果", "RESULTS", RESULTS),
        ("结论", "CONCLUSIONS", CONCLUSION),
    ]:
        sections.append(Section(label, start, start + len(part), category))
        start += len(part) + len(sep)
    return tuple(sections)


def test_noteexpress_record_fields():
    (doc,) = read_cnki(NOTEEXPRESS.encode())
    assert doc.id == FRAX_ID
    assert doc.text == f"{TITLE} {ABSTRACT}"  # the abstract after a full-width colon
    assert doc.authors == AUTHORS
    assert doc.keywords == ("骨折风险评估工具", "骨质疏松", "乳腺癌", "骨密度")  # ";;" separated
    assert doc.pub_date == "2021"
    assert doc.publication_types == ("Journal Article",)
    assert ("cn", "11-3701/R") in doc.metadata
    assert ("issn", "1006-7108") in doc.metadata
    assert doc.sections == _frax_sections()


def test_endnote_records():
    frax, dnmt = read_cnki(ENDNOTE.encode())
    assert frax.id == FRAX_ID
    assert frax.text == f"{TITLE} {OBJECTIVE} {METHODS} {RESULTS} {CONCLUSION}"  # (#br) -> space
    assert frax.sections == _frax_sections(" ")
    assert frax.authors == AUTHORS
    assert ("format", "cnki-endnote") in frax.metadata
    assert ("database", "CNKI") in frax.metadata
    assert dnmt.doi == "10.12007/j.issn.0258-4646.2021.01.001"
    assert dnmt.pub_date == "2021-01-13"  # %8 is the full date
    assert dnmt.authors == ("王奕丹", "刘丽梅")
    abstract = dnmt.text[len(dnmt.title) + 1 :]
    assert abstract == (
        "目的：探讨Dnmt3b对miRNA的影响。 方法：高通量测序检测miRNA表达。 "
        "结果：miR-200a表达上调（P<0.05）。 结论：Dnmt3b影响miRNA表达。"
    )
    assert [(s.label, s.category) for s in dnmt.sections] == [
        ("TITLE", ""),
        ("目的", "OBJECTIVE"),
        ("方法", "METHODS"),
        ("结果", "RESULTS"),
        ("结论", "CONCLUSIONS"),
    ]
    assert dnmt.text[dnmt.sections[3].start : dnmt.sections[3].end] == (
        "结果：miR-200a表达上调（P<0.05）。"
    )


def test_refworks_records():
    frax, noh = read_cnki(REFWORKS.encode())
    assert frax.id == FRAX_ID
    assert frax.text == f"{TITLE} {ABSTRACT}"
    assert frax.authors == AUTHORS
    assert ("volume", "27") in frax.metadata  # from the lower-case "vo" tag
    assert ("declared_language", "中文") in frax.metadata
    assert noh.language == "en"
    assert noh.doi == "10.1016/j.landurbplan.2018.11.005"
    assert noh.journal == "Landscape and Urban Planning"
    # authors split on ";" only when there is one: "Noh, Youngre" stays one name
    assert noh.authors == ("Noh, Youngre",)
    assert noh.keywords == ("Greenway", "Railroad", "Property value")


def test_same_record_same_id_in_every_dialect():
    ids = {
        dialect: documents(reader(text.encode()))[0].id
        for dialect, reader, text in [
            ("estudy", read_cnki_estudy, ESTUDY),
            ("noteexpress", read_cnki_noteexpress, NOTEEXPRESS),
            ("endnote", read_cnki_endnote, ENDNOTE),
            ("refworks", read_cnki_refworks, REFWORKS),
        ]
    }
    assert set(ids.values()) == {FRAX_ID}


def test_id_rule_is_pinned():
    # sha1 over normalised title, authors, journal, year; changing it re-ids every CNKI record
    key = "\x1f".join(
        [
            "应用frax评价乳腺癌术后患者骨折风险的临床研究",
            "王东岩\x1e林红晓\x1e金雨",
            JOURNAL,
            "2021",
        ]
    )
    assert "cnki:" + hashlib.sha1(key.encode()).hexdigest()[:16] == FRAX_ID
    assert cnki_id(TITLE, AUTHORS, JOURNAL, "2021") == FRAX_ID


def test_id_ignores_width_case_spacing_and_punctuation():
    a = cnki_id("以乳头为中心的纵（横）梭形切口手术 ", ["柳盛辉"], "当代医学", "2021")
    b = cnki_id("以乳头为中心的纵(横)梭形切口手术", [" 柳盛辉"], "当代医学", "2021")
    assert a == b
    assert cnki_id("Circ RNA in Tumours", [], "J", "2021") == cnki_id(
        "circRNA in tumours.", [], "J", "2021"
    )
    assert cnki_id(TITLE, AUTHORS, JOURNAL, "2020") != FRAX_ID
    assert cnki_id(TITLE, AUTHORS[:2], JOURNAL, "2021") != FRAX_ID


def test_id_same_with_markers_and_markup():
    plain = cnki_id("CO2浓度对H2O的影响", [], "J", "2020")
    assert cnki_id(clean_text("CO~(2)浓度对H_(2)O的影响"), [], "J", "2020") == plain
    assert cnki_id(clean_text("CO<sub>2</sub>浓度对H<sub>2</sub>O的影响"), [], "J", "2020") == plain


# --- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dialect"),
    [
        (ESTUDY, "estudy"),
        (NOTEEXPRESS, "noteexpress"),
        (ENDNOTE, "endnote"),
        (REFWORKS, "refworks"),
        ("\ufeff\n\n" + ESTUDY, "estudy"),
        ("Exported from CNKI\n\n" + REFWORKS, "refworks"),
        ("", None),
        ("hello\nworld\n", None),
        ("RT\nnot a refworks field\n", None),  # a lone marker does not decide
    ],
)
def test_detect_dialect(text, dialect):
    assert detect_cnki_dialect(text) == dialect


def test_no_records_is_an_input_error():
    for data in [b"", b"hello\nworld\n", b"Title: no marker\n"]:
        with pytest.raises(InputError, match="no CNKI records found") as e:
            read_cnki(data)
        assert e.value.message == NO_RECORDS
    with pytest.raises(InputError, match="no CNKI EndNote records found"):
        list(read_cnki_endnote(ESTUDY.encode()))


def test_dialect_can_be_forced_and_must_be_known():
    assert len(list(read_cnki(REFWORKS.encode(), dialect="refworks"))) == 2
    with pytest.raises(ValueError, match="unknown CNKI dialect"):
        read_cnki(REFWORKS.encode(), dialect="ris")


# --- encodings and line ends ------------------------------------------------------------------


@pytest.mark.parametrize("text", [ESTUDY, NOTEEXPRESS, ENDNOTE, REFWORKS])
def test_same_documents_in_every_encoding_and_line_end(text):
    expected = list(read_cnki(text.encode("utf-8"), source="s"))
    variants = {
        "utf-8-sig": text.encode("utf-8-sig"),
        "gbk": text.encode("gbk"),
        "gb18030": text.encode("gb18030"),
        "utf-16": text.encode("utf-16"),
        "crlf": text.replace("\n", "\r\n").encode("utf-8"),
        "cr": text.replace("\n", "\r").encode("utf-8"),
        "gbk-crlf": text.replace("\n", "\r\n").encode("gbk"),
        "str": text,
    }
    for name, data in variants.items():
        assert list(read_cnki(data, source="s")) == expected, name


def lines_of(data: bytes) -> list[str]:
    return [line.text for line in decode_cnki(io.BytesIO(data))]


def test_decode_cascade():
    assert lines_of("题名".encode()) == ["题名"]
    assert lines_of("题名".encode("utf-8-sig")) == ["题名"]
    assert lines_of("题名\n关键词".encode("gbk")) == ["题名", "关键词"]
    assert lines_of("题名\r\n".encode("utf-16")) == ["题名"]
    assert lines_of(b"a\r\nb\rc\n\nd\r") == ["a", "b", "c", "", "d"]


def test_undecodable_file_names_the_offset():
    with pytest.raises(InputError, match=r"byte offset 11: neither UTF-8 nor GB18030") as e:
        read_cnki(b"DataType: 1\x80\xff\xfe\n")
    assert e.value.line == 1
    with pytest.raises(InputError, match="byte offset 4: not utf-16"):
        read_cnki(b"\xff\xfeD\x00\x00\xdc")  # a lone low surrogate after the BOM and a "D"


def test_undecodable_record_in_utf8_file_is_quarantined():
    data = ESTUDY.encode()
    bad_at = data.index("保乳".encode())  # the title of the second record
    data = data[:bad_at] + b"\xff" + data[bad_at + 1 :]
    first, second = read_cnki(data, source="f")
    assert first.id == FRAX_ID  # the rest of the file is read as UTF-8, not GB18030 mojibake
    assert isinstance(second, Quarantined)
    assert (second.position, second.line) == (2, 16)
    assert second.reason == (
        f"undecodable bytes at byte offset {bad_at} (line 17): not utf-8 like the rest of the file"
    )
    assert second.raw.startswith("DataType: 1\nTitle-题名: \ufffd")


def test_undecodable_record_in_gbk_file_is_quarantined():
    data = ESTUDY.encode("gbk")
    bad_at = data.index("保乳".encode("gbk"))
    data = data[:bad_at] + b"\xff" + data[bad_at + 1 :]
    first, second = read_cnki(data)
    assert first.id == FRAX_ID
    assert isinstance(second, Quarantined)
    assert "not gb18030" in second.reason


# --- quarantine -------------------------------------------------------------------------------


def test_record_without_title_or_abstract_is_quarantined():
    split = ESTUDY.index("DataType", 1)  # the second record starts on line 16
    data = ESTUDY[:split] + "DataType: 1\nAuthor-作者: 某人;\nSummary-摘要: <正>\n" + ESTUDY[split:]
    first, empty, second = read_cnki(data.encode(), source="e.txt")
    assert empty == Quarantined(
        "e.txt",
        2,
        "record without a title or an abstract",
        line=16,
        raw="DataType: 1\nAuthor-作者: 某人;\nSummary-摘要: <正>",
    )
    assert isinstance(first, Document)
    assert isinstance(second, Document)


def test_duplicate_records_are_both_yielded_for_the_ingest_to_collapse():
    # The ingest keeps the later record of an id and counts the collapse, for every format.
    first, second = read_cnki((NOTEEXPRESS + NOTEEXPRESS).encode())
    assert isinstance(first, Document) and isinstance(second, Document)
    assert first.id == second.id == FRAX_ID


def test_text_before_the_first_record_is_quarantined_at_position_0():
    items = list(read_cnki(("CNKI export 2021-01-20\n" + ESTUDY).encode()))
    head = items[0]
    assert head == Quarantined(
        "", 0, "text before the first record", line=1, raw="CNKI export 2021-01-20"
    )
    assert items[1].id == FRAX_ID
    assert [i.position for i in quarantined(items)] == [0]


def test_raw_is_bounded():
    long = ESTUDY.replace(ABSTRACT, "长" * 5000)
    data = long.replace(
        "DataType: 1\nTitle", "DataType: 1\nPage-页码: " + "9" * 3000 + "\nTitle", 1
    )
    data = data.replace(f"Title-题名: {TITLE}\n", "").replace(
        "Summary-摘要: " + "长" * 5000 + "\n", ""
    )
    q = quarantined(read_cnki(data.encode()))
    assert len(q) == 1 and len(q[0].raw) == 2000


# --- multi-line values, blank lines -----------------------------------------------------------


def test_multi_line_values_and_blank_lines_inside_a_noteexpress_record():
    text = (
        "{Reference Type}: Journal Article\n"
        "{Title}: 兽医中药复方药物动力学研究方法及展望\n"
        "{Author}: 周岷江,王天益,李英伦\n"
        "{Author Address}: 四川农业大学动物科技学院 四川雅安625014\n\n\n\n,四川雅安625014\n"
        "{Year}: 2002\n"
        "{Abstract}: 本文概述了兽医中药复方\n药物代谢动力学的研究方法。\n"
        "{Database Provider}: CNKI\n"
    )
    (doc,) = read_cnki(text.encode())
    assert doc.authors == ("周岷江", "王天益", "李英伦")
    assert (
        "affiliations",
        "四川农业大学动物科技学院 四川雅安625014 ,四川雅安625014",
    ) in doc.metadata
    # a line break inside an abstract is a break between parts
    assert doc.text.endswith(" 本文概述了兽医中药复方 药物代谢动力学的研究方法。")
    assert [s.label for s in doc.sections] == ["TITLE", "ABSTRACT", "ABSTRACT"]


def test_estudy_continuation_line():
    text = "DataType: 1\nTitle-题名: 标题\nSummary-摘要: 第一段。\n第二段。\nYear-年: 2020\n"
    (doc,) = read_cnki(text.encode())
    assert doc.text == "标题 第一段。 第二段。"
    assert doc.pub_date == "2020"


def test_endnote_record_without_blank_line_between_records():
    text = "%0 Journal Article\n%T 第一\n%A 甲\n%0 Journal Article\n%T 第二\n%A 乙\n"
    assert [d.title for d in read_cnki(text.encode())] == ["第一", "第二"]


def test_refworks_field_that_looks_like_a_word_is_not_a_tag_in_lower_case():
    text = "RT Journal Article\nT1 标题\nAB 第一行\nab initio 计算\n"
    (doc,) = read_cnki(text.encode())
    assert doc.text == "标题 第一行 ab initio 计算"


# --- clean-up rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("<正>苯妥英钠作为一种传统抗癫痫药物", "苯妥英钠作为一种传统抗癫痫药物"),
        ("&lt;正&gt;前言", "前言"),
        ("CO~(2)分压升高", "CO2分压升高"),
        ("Ca~(2+)浓度", "Ca2+浓度"),
        ("中毒的情况~([1-3])。", "中毒的情况[1-3]。"),
        ("1.0 mg·kg~(-1) 607-LDM", "1.0 mg·kg-1 607-LDM"),
        ("H_(2)O_(2)处理", "H2O2处理"),
        ("ADM对CD4~+、CD8~+T淋巴", "ADM对CD4+、CD8+T淋巴"),
        ("(χ~2=14.817,P<0.05)", "(χ2=14.817,P<0.05)"),
        ("浓度为1×10~6个/mL", "浓度为1×106个/mL"),
        ("年龄18~65岁,T1~2期", "年龄18~65岁,T1~2期"),  # ranges stay
        ("<i>in vitro</i> 与 <sup>3</sup>H标记", "in vitro 与 3H标记"),
        ("P<a and b>c,P<0.05", "P<a and b>c,P<0.05"),  # not tags
        ("A &amp; B &#955; &para C", "A & B λ &para C"),  # only well-formed entities
        ("  多个 \t 空格\u3000和全角空格  ", "多个 空格 和全角空格"),
    ],
)
def test_clean_up(raw, clean):
    assert clean_abstract(raw)[0] == clean


def test_breaks_and_heading():
    text, sections = clean_abstract("Abstract(#br)First part.<br/>Second part.\n\n(#br)")
    assert text == "First part. Second part."
    assert sections == [Section("ABSTRACT", 0, 11), Section("ABSTRACT", 12, 24)]


def test_labelled_parts_need_three_in_order_from_the_start():
    structured = "Objective: To test. Methods: We tested. Results: It worked. Conclusions: Good."
    _, sections = clean_abstract(structured)
    assert [(s.label, s.category) for s in sections] == [
        ("Objective", "OBJECTIVE"),
        ("Methods", "METHODS"),
        ("Results", "RESULTS"),
        ("Conclusions", "CONCLUSIONS"),
    ]
    # inside a sentence, or fewer than three, or not at the start: no labelled parts
    for text in [
        "本研究采用新方法治疗。结果显示有效。结论尚需验证。",
        "目的探讨疗效。方法随机分组。",
        "目的比较不同手术方法治疗效果。研究组效果更好。",
    ]:
        assert [s.label for s in clean_abstract(text)[1]] == ["ABSTRACT"]
    # a repeated or out-of-order label does not open a part
    _, sections = clean_abstract("目的探讨。方法选取。结果有效。结果显示更多。结论良好。")
    assert [s.label for s in sections] == ["目的", "方法", "结果", "结论"]
    assert sections[2] == Section("结果", 10, 22, "RESULTS")


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("苯妥英钠;卡培他滨;相互作用", ["苯妥英钠", "卡培他滨", "相互作用"]),
        ("虚拟网络功能;;预测;;迁移", ["虚拟网络功能", "预测", "迁移"]),
        ("肉瘤；软组织肿瘤；诊断", ["肉瘤", "软组织肿瘤", "诊断"]),
        ("巴拿马,习近平,未来,", ["巴拿马", "习近平", "未来"]),
        ("谢昕,王小增", ["谢昕", "王小增"]),
        ("1,25-二羟维生素D3,骨质疏松", ["1,25-二羟维生素D3", "骨质疏松"]),
        ("2,3-二磷酸甘油酸;红细胞", ["2,3-二磷酸甘油酸", "红细胞"]),
        ("TGF-β/Smad;NF-κB;Wnt", ["TGF-β/Smad", "NF-κB", "Wnt"]),
        ("  ", []),
    ],
)
def test_split_list(value, items):
    assert split_list(value) == items


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2021", "2021"),
        ("2021-01-15 16:54", "2021-01-15"),
        ("2021/1/5", "2021-01-05"),
        ("2021年1月", "2021-01"),
        ("2021-13-01", "2021"),
        ("S1", ""),
    ],
)
def test_iso_date(value, iso):
    assert iso_date(value) == iso


# --- the real samples -------------------------------------------------------------------------


@pytest.mark.data
def test_real_estudy_sample(shared_data):
    data = (shared_data / "cnki/estudy/demo_cnki_202101.txt").read_bytes()
    items = list(read_cnki(data, source="demo_cnki_202101.txt"))
    docs = documents(items)
    assert len(items) == len(docs) == 20
    assert len({d.id for d in docs}) == 20
    assert all(d.language == "zh" and d.id.startswith("cnki:") for d in docs)
    first = docs[0]
    assert first.title == "1例卡培他滨与苯妥英钠相互作用致乳腺癌合并癫痫患者小脑功能障碍的病例分析"
    assert first.authors == ("柯洪琴", "陈璿英", "王启斌")
    assert first.journal == "中南药学"
    assert first.pub_date == "2021-01-18"
    assert first.keywords == ("苯妥英钠", "卡培他滨", "相互作用", "小脑功能障碍", "不良反应")
    assert first.text.startswith(first.title + " 苯妥英钠作为一种传统抗癫痫药物(AEDs)")  # <正> gone
    assert first.text.endswith("出现重度中毒的情况[1-3]。")  # ~([1-3]) -> [1-3]
    assert ("cnki_filename", "ZNYX202101034") in first.metadata
    # record 2 has no authors and no Year: the year comes from PubTime
    assert (docs[1].authors, docs[1].pub_date) == ((), "2021-01-15")
    assert sum(1 for d in docs if d.pub_date == "2021-01-15") == 5
    assert docs[5].id == cnki_id(TITLE, AUTHORS, JOURNAL, "2021") == FRAX_ID
    assert "CD4+、CD8+和Treg" in docs[2].text
    assert "χ2=14.817" in docs[11].text
    assert "mg·kg-1 607-LDM" in docs[19].text
    assert not any("~(" in d.text or "<正>" in d.text or "\n" in d.text for d in docs)
    structured = [d for d in docs if len(d.sections) > 2]
    assert len(structured) == 9
    assert [s.category for s in docs[16].sections] == ["", "OBJECTIVE", "METHODS", "RESULTS"]
    for d in docs:
        assert d.sections[0] == Section("TITLE", 0, len(d.title))
        assert d.sections[-1].end == len(d.text)


@pytest.mark.data
def test_real_noteexpress_samples(shared_data):
    folder = shared_data / "cnki/noteexpress"
    counts = {}
    docs = {}
    for path in sorted(folder.glob("*.net")):
        items = list(read_cnki(path.read_bytes(), source=path.name))
        assert not quarantined(items)
        counts[path.name] = len(items)
        docs[path.name] = items
    assert counts == {"ChineseColon.net": 1, "CoverAllTest15Entries.net": 15, "mixed.net": 12}
    assert sum(counts.values()) == 28

    (colon,) = docs["ChineseColon.net"]
    assert colon.title == "软组织肉瘤诊治中国专家共识(2015年版)"
    assert colon.authors == ("中国抗癌协会肉瘤专业委员会", "中国临床肿瘤学会")
    assert colon.keywords == ("肉瘤", "软组织肿瘤", "诊断", "治疗", "规范")
    assert colon.text.startswith(colon.title + " 软组织肉瘤是一类间叶来源的恶性肿瘤")  # after "："
    assert colon.pub_date == "2016"
    assert ("url", "https://rs.yiigle.com/CN112152201604/889113.htm") in colon.metadata
    assert ("declared_language", "chi") in colon.metadata
    assert (
        "translated_title",
        "Chinese expert consensus on diagnosis and treatment of soft tissue sarcomas (Version 2015)",
    ) in colon.metadata

    cover = docs["CoverAllTest15Entries.net"]
    english = cover[0]
    assert english.language == "en"
    assert english.text.startswith(english.title + " This research examines the housing market")
    assert "(#br)" not in english.text and "Abstract" not in english.text
    assert english.keywords[-1] == "Brownfield: trail"
    assert [d.publication_types for d in cover[2:4]] == [("Thesis",), ("Thesis",)]
    assert cover[2].journal == "北京交通大学"  # a thesis: its university
    assert cover[5].pub_date == "2019-01-09"  # a newspaper: its Date
    assert sorted(d.language for d in cover).count("en") == 2
    assert not any(d.text.startswith("<正>") or "<正>" in d.text for d in cover)

    mixed = docs["mixed.net"]
    assert mixed[0].keywords == ("虚拟网络功能", "预测", "迁移", "深度学习")
    assert mixed[0].pub_date == ""
    assert mixed[9].authors == ("谢昕", "王小增")
    address = dict(mixed[9].metadata)["affiliations"]
    assert "\n" not in address and address.endswith(",湖北武汉430074")
    assert "1×106个/mL" in mixed[8].text
    assert len({d.id for items in docs.values() for d in items}) == 28


# --- exports in the shape CNKI writes them ----------------------------------------------------
# tests/bioner/ingest/data: CRLF line ends, UTF-8 with full-width punctuation, an abstract over
# 2,000 characters on one line, records lacking an abstract, keywords, journal or date, one
# record with neither title nor abstract; EndNote and RefWorks with a blank line between
# records and one inside a record (after an abstract that ends in a line break).

DATA = Path(__file__).parent / "data"
# dialect: (fixture, the marker that opens each of its records, documents, quarantined)
FIXTURES = {
    "endnote": ("cnki_endnote.txt", b"%0 ", 6, 1),
    "refworks": ("cnki_refworks.txt", b"RT ", 3, 1),
    "estudy": ("cnki_estudy.txt", b"DataType:", 3, 1),
    "noteexpress": ("cnki_noteexpress.txt", b"{Reference Type}", 3, 1),
}
VITAMIN_D = "血清维生素D水平与2型糖尿病患者糖尿病肾病进展的关系：一项2年随访研究"
VITAMIN_D_AUTHORS = ("张晓燕", "李明", "王建国")
AFFILIATIONS = "首都医科大学附属北京朝阳医院内分泌科; 首都医科大学附属北京朝阳医院肾内科"
KEYWORDS = ("维生素D", "2型糖尿病", "糖尿病肾病", "疾病进展", "危险因素")


def fixture(dialect: str) -> bytes:
    return (DATA / FIXTURES[dialect][0]).read_bytes()


def record_count(data: bytes, marker: bytes) -> int:
    """Records counted apart from the reader: the lines that start with the record marker."""
    return sum(1 for line in data.splitlines() if line.startswith(marker))


class Trickle:
    """A stream giving at most ``step`` bytes a read, so chunks end inside CRLFs and characters."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.at = data, step, 0

    def read(self, size: int = -1) -> bytes:
        n = self.step if size < 0 else min(size, self.step)
        out = self.data[self.at : self.at + n]
        self.at += len(out)
        return out


@pytest.mark.parametrize("dialect", FIXTURES)
def test_every_record_of_a_real_shape_export_is_a_document_or_quarantined(dialect):
    name, marker, n_documents, n_quarantined = FIXTURES[dialect]
    data = fixture(dialect)
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    items = list(read_cnki(io.BytesIO(data), source=name))
    assert len(items) == record_count(data, marker) == n_documents + n_quarantined
    assert (len(documents(items)), len(quarantined(items))) == (n_documents, n_quarantined)
    assert all(d.metadata[0] == ("format", f"cnki-{dialect}") for d in documents(items))
    assert not any("\r" in d.text or "\n" in d.text for d in documents(items))
    (empty,) = quarantined(items)
    assert (empty.source, empty.reason) == (name, "record without a title or an abstract")
    assert items[empty.position - 1] is empty


@pytest.mark.parametrize("dialect", FIXTURES)
def test_real_shape_export_same_in_any_line_end_encoding_and_chunking(dialect):
    data = fixture(dialect)
    expected = list(read_cnki(data, source="s"))
    text = data.decode()
    variants = {
        "lf": text.replace("\r\n", "\n").encode(),
        "cr": text.replace("\r\n", "\r").encode(),
        "utf-8-sig": text.encode("utf-8-sig"),
        "gbk": text.encode("gbk"),
        "utf-16": text.encode("utf-16"),
    }
    for name, variant in variants.items():
        assert list(read_cnki(variant, source="s")) == expected, name
    for step in (1, 7):
        for name, variant in [
            ("crlf", data),
            ("gbk", variants["gbk"]),
            ("utf-16", variants["utf-16"]),
        ]:
            got = list(read_cnki(Trickle(variant, step), source="s"))
            assert got == expected, (name, step)


def test_endnote_export_as_cnki_writes_it():
    items = list(read_cnki(fixture("endnote"), source="cnki_endnote.txt"))
    first, no_abstract, no_keywords, thesis, empty, no_journal, blank_inside = items
    assert first.title == VITAMIN_D
    assert first.authors == VITAMIN_D_AUTHORS  # one %A line each
    assert first.keywords == KEYWORDS  # "%K a;;b"
    assert (first.journal, first.pub_date) == ("中华糖尿病杂志", "2021")
    abstract = first.text[len(first.title) + 1 :]
    assert len(abstract) > 2000 and abstract.startswith("目的：探讨血清维生素D水平")
    assert abstract.endswith("临床应重视维生素D水平的监测与补充。")
    assert [s.category for s in first.sections] == [
        "",
        "OBJECTIVE",
        "METHODS",
        "RESULTS",
        "CONCLUSIONS",
    ]
    metadata = dict(first.metadata)
    assert metadata["affiliations"] == AFFILIATIONS
    assert (metadata["issn"], metadata["cn"], metadata["database"]) == (
        "1674-5809",
        "11-5791/R",
        "CNKI",
    )
    assert (metadata["volume"], metadata["issue"], metadata["pages"]) == ("13", "02", "145-151")
    assert first.publication_types == ("Journal Article",)
    assert first.language == "zh"

    assert (
        no_abstract.text
        == no_abstract.title
        == "慢性阻塞性肺疾病急性加重患者血嗜酸性粒细胞计数的临床意义"
    )
    assert (
        dict(no_abstract.metadata)["affiliations"]
        == "四川大学华西医院呼吸与危重症医学科，四川 成都 610041"
    )
    assert no_keywords.keywords == () and no_keywords.text.startswith(no_keywords.title + " 免疫")
    assert thesis.publication_types == ("Thesis",)
    assert (thesis.journal, thesis.pub_date) == ("北京中医药大学", "2019")  # %I: no %J
    assert thesis.authors == ("孙悦",)  # %Y, the supervisor, is not an author
    assert empty == Quarantined(
        "cnki_endnote.txt",
        5,
        "record without a title or an abstract",
        line=empty.line,
        raw=empty.raw,
    )
    assert empty.raw.startswith("%0 Journal Article\n%A 吴敏\n%A 郑红") and "\r" not in empty.raw
    assert fixture("endnote").split(b"\r\n")[empty.line - 1] == b"%0 Journal Article"
    assert (no_journal.journal, no_journal.pub_date, no_journal.keywords) == ("", "", ())
    # the blank line after its abstract neither ends the record nor makes one
    assert blank_inside.title == "炎症性肠病患者焦虑抑郁状态的调查分析"
    assert dict(blank_inside.metadata)["pages"] == "612-616"
    assert blank_inside.text.endswith("IBD患者焦虑抑郁常见，应予以关注。")


def test_refworks_export_as_cnki_writes_it():
    first, english, empty, title_only = read_cnki(fixture("refworks"))
    assert (first.title, first.authors, first.keywords) == (VITAMIN_D, VITAMIN_D_AUTHORS, KEYWORDS)
    assert dict(first.metadata)["affiliations"] == AFFILIATIONS  # one AD line each
    # one A1 line per author, "Last, First": never split on the comma
    assert english.authors == ("Noh, Youngre", "Kim, Jiyoung")
    assert english.keywords == ("Greenway", "Railroad", "Property value")
    assert english.doi == "10.1016/j.landurbplan.2018.11.005"  # after the blank line
    assert english.language == "en"
    assert isinstance(empty, Quarantined) and empty.position == 3
    assert title_only.text == "幽门螺杆菌感染与胃癌前病变的相关性分析"


def test_estudy_and_noteexpress_exports_as_cnki_writes_them():
    first, repeated, empty, marked = read_cnki(fixture("estudy"))
    assert (first.title, first.authors, first.keywords) == (VITAMIN_D, VITAMIN_D_AUTHORS, KEYWORDS)
    assert dict(first.metadata)["affiliations"] == AFFILIATIONS
    assert repeated.authors == ("陈静", "刘洋")  # Author-作者 repeated
    assert isinstance(empty, Quarantined) and empty.position == 3
    assert marked.text == f"{marked.title} 幽门螺杆菌（Hp）感染是胃癌前病变的危险因素。"

    first, repeated, empty, colon = read_cnki(fixture("noteexpress"))
    assert (first.title, first.authors, first.keywords) == (VITAMIN_D, VITAMIN_D_AUTHORS, KEYWORDS)
    assert dict(first.metadata)["issn"] == "1674-5809"
    assert repeated.authors == ("陈静", "刘洋")  # {Author} repeated
    # a blank line inside a value is part of it, not the end of the record
    assert (
        dict(repeated.metadata)["affiliations"]
        == "四川大学华西医院呼吸与危重症医学科 四川 成都 610041"
    )
    assert isinstance(empty, Quarantined) and empty.position == 3
    assert colon.title == "幽门螺杆菌感染与胃癌前病变的相关性分析"  # "{Title}：" full-width


def test_same_record_same_id_in_the_four_exports():
    ids = {d: next(read_cnki(fixture(d))).id for d in FIXTURES}
    assert len(set(ids.values())) == 1, ids
    assert ids["endnote"] == cnki_id(VITAMIN_D, VITAMIN_D_AUTHORS, "中华糖尿病杂志", "2021")


def test_bad_bytes_quarantine_their_record_and_the_others_are_read():
    data = fixture("endnote")
    second = "慢性阻塞性肺疾病急性加重".encode()
    third = "新辅助免疫治疗".encode()
    # record 2's title in GBK (a stray second encoding), record 3's with an invalid byte
    data = data.replace(second, "慢性阻塞性肺疾病急性加重".encode("gbk"))
    bad_at = data.index(third)
    data = data[:bad_at] + b"\xff" + data[bad_at + 1 :]
    items = list(read_cnki(Trickle(data, 4096), source="bad.txt"))
    assert len(items) == record_count(data, b"%0 ") == 7
    gbk, invalid = items[1], items[2]
    assert isinstance(gbk, Quarantined) and isinstance(invalid, Quarantined)
    assert (gbk.source, gbk.position, invalid.position) == ("bad.txt", 2, 3)
    assert gbk.reason.startswith("undecodable bytes at byte offset ")
    assert gbk.reason.endswith(f"(line {gbk.line + 4}): not utf-8 like the rest of the file")
    assert invalid.reason == (
        f"undecodable bytes at byte offset {bad_at} (line {invalid.line + 3}): "
        "not utf-8 like the rest of the file"
    )
    assert "\ufffd" in invalid.raw
    assert [type(i).__name__ for i in items].count("Document") == 4  # and the empty record
    assert items[0].id == next(read_cnki(fixture("endnote"))).id


class RepeatedExport:
    """An export of ``n`` copies of a fixture made while it is read, never whole in memory."""

    def __init__(self, data: bytes, n: int) -> None:
        self.data, self.n, self.buffer = data, n, b""

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self.buffer) < size) and self.n:
            self.buffer += self.data
            self.n -= 1
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


def test_reading_is_a_stream_in_flat_memory():
    data = fixture("endnote")
    peaks = []
    for n in (20, 200):
        tracemalloc.start()
        try:
            assert sum(1 for _ in read_cnki(RepeatedExport(data, n))) == 7 * n
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    small, large = peaks
    assert large < small * 1.2, (small, large)  # ten times the records, not ten times the memory


def test_a_stray_gbk_record_first_does_not_make_a_utf8_file_gbk():
    first = "%0 Journal Article\r\n%T 幽门螺杆菌感染与胃癌前病变\r\n\r\n".encode("gbk")
    data = first + fixture("endnote")
    items = list(read_cnki(data))
    assert isinstance(items[0], Quarantined) and "not utf-8" in items[0].reason
    assert documents(items) == documents(read_cnki(fixture("endnote")))
    assert len(items) == 8
