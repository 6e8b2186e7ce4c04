//! The importers of each format (one [`RolloutImporter`] per format; docs/formats/*.md).

mod common;
mod inspect;
mod lighteval;
mod lm_eval;
mod native;
mod openai;
mod qwen_math;
mod verl;

use super::RolloutImporter;

pub(crate) use common::json_document_note;

/// Every importer in detection order: formats with distinctive keys first; native last among
/// the JSON Lines formats because its keys (`model`, `problem_id`) are the most generic.
pub static ALL: &[&dyn RolloutImporter] = &[
    &inspect::InspectImporter,
    &lighteval::LightevalImporter,
    &lm_eval::LmEvalImporter,
    &qwen_math::QwenMathImporter,
    &verl::VerlImporter,
    &openai::OpenaiImporter,
    &native::NativeImporter,
];

#[cfg(test)]
mod tests {
    use super::common::{fixture, temp_file};
    use super::ALL;
    use crate::ingest::{detect, read_head, Format, InputFile, SNIFF_BYTES};

    /// Each fixture is recognised by its own importer and by no other, so detection does not
    /// depend on the order of [`ALL`].
    #[test]
    fn each_fixture_is_sniffed_by_exactly_its_format() {
        let native_rollout = br#"{"model":"qwen2.5-math-7b","dataset":"aime24","problem_id":"17","sample":0,"correct":false,"response":"... \\boxed{12}"}
{"model":"qwen2.5-math-7b","dataset":"aime24","problem_id":"18","n":640,"c":3}
"#;
        let native_counts = br#"{"model":"m","problem_id":3,"n":10,"c":2}"#;
        let (native1, _d1) = temp_file("demo.jsonl", native_rollout);
        let (native2, _d2) = temp_file("counts.jsonl", native_counts);
        let cases = [
            (
                fixture("lm-eval/samples_aime24_2025-06-01T12-00-00.000000.jsonl"),
                Format::named("lm-eval"),
            ),
            (
                fixture("lm-eval/samples_aime24_2025-06-01T12-00-00.000000.jsonl.gz"),
                Format::named("lm-eval"),
            ),
            (
                fixture("qwen-math/math500/test_qwen25-math-cot_-1_seed0_t0.6_s0_e-1.jsonl"),
                Format::named("qwen-math"),
            ),
            (fixture("inspect/log.eval"), Format::named("inspect")),
            (fixture("inspect/log.json"), Format::named("inspect")),
            (fixture("verl/100.jsonl"), Format::named("verl")),
            (fixture("openai/completions.jsonl"), Format::named("openai")),
            (fixture("openai/chat.jsonl"), Format::named("openai")),
            (
                fixture("lighteval/details_aime24|0_2026-12-02T12-00-00.000000.parquet"),
                Format::named("lighteval"),
            ),
            (
                fixture(
                    "lighteval/details_lighteval|math_500|0_2026-12-02T12-00-00.000000.parquet",
                ),
                Format::named("lighteval"),
            ),
            (native1, Format::named("native")),
            (native2, Format::named("native")),
        ];
        for (path, format) in cases {
            let name = crate::ingest::display_name(&path);
            let input = InputFile::new(&path, &name);
            let head = read_head(&input, SNIFF_BYTES).unwrap();
            let sniffed: Vec<Format> = ALL
                .iter()
                .filter(|i| i.sniff(&name, &head))
                .map(|i| Format::of(*i))
                .collect();
            assert_eq!(sniffed, [format], "{name}");
            assert_eq!(detect(&input).unwrap(), format, "{name}");
            // Also under a neutral name (an upload spooled as `upload`): content alone decides,
            // except for .eval archives, which are recognised by their member names (and
            // parquet files larger than the head, whose column names are in the footer).
            let sniffed: Vec<Format> = ALL
                .iter()
                .filter(|i| i.sniff("upload", &head))
                .map(|i| Format::of(*i))
                .collect();
            assert_eq!(sniffed, [format], "{name} as upload");
        }
    }

    #[test]
    fn sniffing_never_panics_on_odd_heads() {
        let heads: [&[u8]; 11] = [
            b"PAR1",
            b"PAR1\x00\x00PAR1",
            b"",
            b"\n\n\n",
            b"{",
            b"PK\x03\x04",
            b"\xff\xfe\x00{\"a\":1}",
            b"<script>alert(1)</script>",
            b"{\"doc_id\":",
            b"[{\"eval\":{}}]",
            b"{\"eval\":{\"task\":\"x\"},\"samples\":[",
        ];
        for head in heads {
            for importer in ALL {
                let _ = importer.sniff("f.jsonl", head);
                let _ = importer.sniff("f.eval", head);
                let _ = importer.sniff("details_x_2025-01-01.parquet", head);
            }
        }
    }

    /// Every JSON Lines importer says what an indented JSON document is, on line 1, instead of a
    /// parse error per line; detection says the same.
    #[test]
    fn json_lines_importers_name_a_json_document() {
        use crate::ingest::formats::common::read_all;
        use crate::ingest::ReadStop;
        let doc = b"{\n  \"model\": \"m\",\n  \"problem_id\": \"1\",\n  \"correct\": true\n}\n";
        let (path, _dir) = temp_file("rollouts.json", doc);
        let message = "rollouts.json:1: this is a JSON document spread over several lines, not JSON Lines (one record per line)";
        // Inspect reads JSON documents; lighteval reads parquet (and says so).
        for importer in ALL
            .iter()
            .filter(|i| !["inspect", "lighteval"].contains(&i.spec().name))
        {
            let (sink, result) = read_all(*importer, &path, "rollouts.json");
            let Err(ReadStop::Input(e)) = result else {
                panic!("{}: {result:?}", Format::of(*importer))
            };
            assert_eq!(e.to_string(), message, "{}", Format::of(*importer));
            assert!(sink.records.is_empty() && sink.errors.is_empty());
        }
        let input = InputFile::new(&path, "rollouts.json");
        assert_eq!(
            detect(&input).unwrap_err().to_string(),
            "rollouts.json: this is a JSON document spread over several lines, not JSON Lines (one record per line)"
        );
        // An Inspect log forced through a JSON Lines format says which format it is.
        let log = fixture("inspect/log.json");
        let (_, result) = read_all(ALL[ALL.len() - 1], &log, "log.json");
        let Err(ReadStop::Input(e)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(
            e.to_string(),
            "log.json:1: this is an Inspect AI log (one JSON document), not JSON Lines; import it with format inspect (--format inspect)"
        );
    }

    #[test]
    fn the_format_list_and_the_importers_agree() {
        for format in Format::all() {
            assert_eq!(
                ALL.iter().filter(|i| Format::of(**i) == format).count(),
                1,
                "{format}"
            );
        }
        assert_eq!(Format::of(*ALL.last().unwrap()), Format::named("native"));
    }
}
