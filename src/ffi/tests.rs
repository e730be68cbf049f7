//! Property tests of the C ABI: every exported function called with arbitrary
//! bytes for every string (or NULL), arbitrary floats (NaN, ±inf, subnormal)
//! and integers, and NULL out-parameters. Never a crash; always one of the
//! codes the function documents; out-parameters written on success only; a
//! message exactly when it failed.

use std::ffi::{c_char, CStr, CString};
use std::ptr;
use std::sync::OnceLock;

use proptest::prelude::*;

use super::*;

/// The global instance, started once for this test process.
fn initialised() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/test-data")
            .join(format!("ffi-props-{}", std::process::id()));
        let config = serde_json::json!({
            "data_dir": dir,
            "device": "cpu",
            "check_interval_ms": 3_600_000,
            "text_model": { "hash_buckets": 1024, "embedding_dim": 8 },
        })
        .to_string();
        let config = CString::new(config).unwrap();
        // SAFETY: a valid NUL-terminated string that outlives the call.
        assert_eq!(unsafe { otf_initialize(config.as_ptr()) }, OtfResult::Ok);
    });
}

/// The configuration of [`opened`]'s handle: its own folder under target/
/// for this test process.
fn handle_config() -> &'static [u8] {
    static CONFIG: OnceLock<String> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/test-data")
                .join(format!("ffi-props-handle-{}", std::process::id()));
            serde_json::json!({
                "data_dir": dir,
                "device": "cpu",
                "check_interval_ms": 3_600_000,
                "text_model": { "hash_buckets": 1024, "embedding_dim": 8 },
            })
            .to_string()
        })
        .as_bytes()
}

/// A handle opened once for this test process (its address: handles are
/// used from any thread).
fn opened() -> *const OtfCoordinator {
    static OPENED: OnceLock<usize> = OnceLock::new();
    let address = *OPENED.get_or_init(|| {
        let config = CString::new(handle_config()).unwrap();
        let mut handle: *mut OtfCoordinator = ptr::null_mut();
        // SAFETY: a valid NUL-terminated string and a live out-parameter.
        assert_eq!(
            unsafe { otf_coordinator_new(config.as_ptr(), &mut handle) },
            OtfResult::Ok
        );
        handle as usize
    });
    address as *const OtfCoordinator
}

/// A string argument: NULL, arbitrary bytes, or (mostly) one of `valid`,
/// so that calls also get past validation.
fn text(valid: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        2 => proptest::collection::vec(1u8..=255, 0..40).prop_map(Some),
        6 => proptest::sample::select(valid).prop_map(|s| Some(s.as_bytes().to_vec())),
    ]
}

const AGENTS: &[&str] = &["scout", "critic", "fact_checker"];
const TASKS: &[&str] = &["news", "sentiment"];
const INPUTS: &[&str] = &["a short article", "caf\u{e9} society \u{1f680}", "markets rally", "   "];
const TARGETS: &[&str] = &["\"bbc\"", "\"cnn\"", "\"reuters\"", "\"\"", "0.5", "not json"];
const EXTRAS: &[&str] = &["https://example.org/a?b='c'", "", "a person's comment"];
const CONFIGS: &[&str] = &["{}", "{\"update_threshold\": 0}", "[]", "{\"device\": \"tpu\"}"];

/// The strings of a call adding an example: agent, task, input, target, target, extra.
fn example_strings() -> impl Strategy<Value = Vec<Option<Vec<u8>>>> {
    (
        text(AGENTS),
        text(TASKS),
        text(INPUTS),
        text(TARGETS),
        text(TARGETS),
        text(EXTRAS),
    )
        .prop_map(|(a, b, c, d, e, f)| vec![a, b, c, d, e, f])
}

/// A float: anything, special values included.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => 0.0f64..=1.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::MIN_POSITIVE / 2.0),
        1 => Just(-0.0),
        2 => any::<f64>(),
    ]
}

/// Owns the C strings of one call.
struct Args(Vec<Option<CString>>);

impl Args {
    fn new(values: &[Option<Vec<u8>>]) -> Args {
        Args(
            values
                .iter()
                .map(|v| {
                    v.as_ref()
                        .map(|b| CString::new(b.clone()).expect("no NUL in the bytes"))
                })
                .collect(),
        )
    }

    fn ptr(&self, i: usize) -> *const c_char {
        self.0[i].as_ref().map_or(ptr::null(), |s| s.as_ptr())
    }

    fn null_at(&self, required: &[usize]) -> bool {
        required.iter().any(|&i| self.0[i].is_none())
    }
}

fn message() -> String {
    // SAFETY: the library returns a valid NUL-terminated string for this thread.
    unsafe { CStr::from_ptr(otf_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// The codes any call that validates its input may return, and the message rule.
fn check(code: OtfResult, allowed: &[OtfResult]) -> Result<(), TestCaseError> {
    prop_assert!(allowed.contains(&code), "unexpected code {code:?}: {}", message());
    prop_assert_eq!(
        code == OtfResult::Ok,
        message().is_empty(),
        "{:?}: {:?}",
        code,
        message()
    );
    Ok(())
}

const INPUT: &[OtfResult] = &[
    OtfResult::Ok,
    OtfResult::NullParameter,
    OtfResult::InvalidUtf8,
    OtfResult::InvalidArgument,
];

/// What a call that looks up an agent, a task or a model may return.
const LOOKUPS: [OtfResult; 8] = [
    OtfResult::Ok,
    OtfResult::NullParameter,
    OtfResult::InvalidUtf8,
    OtfResult::InvalidArgument,
    OtfResult::UnknownAgent,
    OtfResult::NoModel,
    OtfResult::Checkpoint,
    OtfResult::Model,
];

/// Calls `call` with an id out-parameter (NULL unless `with_out`) and checks
/// that the id is written exactly on success.
fn call_with_id_out(with_out: bool, call: impl FnOnce(*mut u64) -> OtfResult) -> Result<OtfResult, TestCaseError> {
    let mut id = u64::MAX;
    let out = if with_out { &mut id as *mut u64 } else { ptr::null_mut() };
    let code = call(out);
    if with_out {
        prop_assert_eq!(
            code == OtfResult::Ok,
            id != u64::MAX,
            "out_id written exactly on success"
        );
    }
    Ok(code)
}

/// The review queue's and the export's calls on `handle` (NULL or live),
/// with the strings of `args`: each returns one of the codes `allowed`
/// gives and writes its output exactly on success.
fn review_and_export(
    handle: *const OtfCoordinator,
    args: &Args,
    version: u64,
    timeout: u32,
    with_out: bool,
    allowed: &dyn Fn(&[OtfResult]) -> Vec<OtfResult>,
) -> Result<(), TestCaseError> {
    let lookups = LOOKUPS;
    let mut items: *mut c_char = ptr::null_mut();
    let out = if with_out {
        &mut items as *mut *mut c_char
    } else {
        ptr::null_mut()
    };
    // SAFETY: the handle is NULL or live; every pointer is NULL or a live
    // NUL-terminated string or output.
    let code = unsafe { otf_coordinator_next_for_review(handle, args.ptr(0), args.ptr(1), timeout, out) };
    check(code, &allowed(&lookups))?;
    prop_assert_eq!(code == OtfResult::Ok, !items.is_null());
    // SAFETY: NULL or a string this library returned, freed once.
    unsafe { otf_string_free(items) };
    let mut label_id = u64::MAX;
    // SAFETY: as above.
    let code = unsafe { otf_coordinator_label(handle, version, args.ptr(2), timeout as i32 - 1, &mut label_id) };
    check(code, &allowed(&lookups))?;
    prop_assert_eq!(code == OtfResult::Ok, label_id != u64::MAX);
    // SAFETY: as above.
    check(unsafe { otf_coordinator_skip(handle, version) }, &allowed(&lookups))?;
    // Never a file outside target/ (an export replaces its file).
    let exports = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-data/ffi-export-handle.jsonl");
    let path = Args::new(&[version
        .is_multiple_of(2)
        .then(|| exports.to_str().unwrap().as_bytes().to_vec())]);
    let mut count = u64::MAX;
    // SAFETY: as above.
    let code = unsafe { otf_coordinator_export_dataset(handle, args.ptr(0), args.ptr(1), path.ptr(0), &mut count) };
    check(
        code,
        &allowed(&[&lookups[..], &[OtfResult::Io, OtfResult::Store]].concat()),
    )?;
    prop_assert_eq!(code == OtfResult::Ok, count != u64::MAX);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn add_training_example_never_crashes(
        strings in example_strings(),
        uncertainty in number(),
        importance in number(),
        priority in prop_oneof![0i32..=3, any::<i32>()],
        with_out in any::<bool>(),
    ) {
        initialised();
        let args = Args::new(&strings);
        // SAFETY: every pointer is NULL or a live NUL-terminated string; `out` is NULL or a live u64.
        let code = call_with_id_out(with_out, |out| unsafe {
            otf_add_training_example(
                args.ptr(0), args.ptr(1), args.ptr(2), args.ptr(3), uncertainty, importance, priority,
                args.ptr(4), args.ptr(5), out,
            )
        })?;
        check(code, INPUT)?;
        // Arguments are checked in order: the first bad one decides the code.
        if args.null_at(&[0, 1, 2, 3]) {
            prop_assert_ne!(code, OtfResult::Ok);
        }
        if !(0.0..=1.0).contains(&uncertainty) || !(0.0..=1.0).contains(&importance) || !(0..=3).contains(&priority) {
            prop_assert_ne!(code, OtfResult::Ok);
        }
    }

    #[test]
    fn add_prediction_feedback_never_crashes(
        strings in example_strings(),
        confidence in number(),
        with_out in any::<bool>(),
    ) {
        initialised();
        let args = Args::new(&strings);
        let mut outcome = OtfFeedback::NotNeeded;
        let sentinel = &mut outcome as *mut OtfFeedback;
        let out = if with_out { sentinel } else { ptr::null_mut() };
        // SAFETY: every pointer is NULL or a live NUL-terminated string; `out` is NULL or live.
        let code = unsafe {
            otf_add_prediction_feedback(
                args.ptr(0), args.ptr(1), args.ptr(2), args.ptr(3), confidence, args.ptr(4), args.ptr(5), out,
            )
        };
        check(code, INPUT)?;
        // Arguments are checked in order: the first bad one decides the code.
        if args.null_at(&[0, 1, 2, 3]) {
            prop_assert_ne!(code, OtfResult::Ok);
        }
        if !(0.0..=1.0).contains(&confidence) {
            prop_assert_ne!(code, OtfResult::Ok);
        }
    }

    #[test]
    fn add_user_correction_never_crashes(
        strings in example_strings(),
        priority in prop_oneof![0i32..=3, any::<i32>()],
        with_out in any::<bool>(),
    ) {
        initialised();
        let args = Args::new(&strings);
        // SAFETY: every pointer is NULL or a live NUL-terminated string; `out` is NULL or a live u64.
        let code = call_with_id_out(with_out, |out| unsafe {
            otf_add_user_correction(
                args.ptr(0), args.ptr(1), args.ptr(2), args.ptr(3), args.ptr(4), priority, args.ptr(5), out,
            )
        })?;
        check(code, INPUT)?;
        if args.null_at(&[0, 1, 2, 3, 4]) {
            prop_assert_ne!(code, OtfResult::Ok);
        }
    }

    #[test]
    fn queries_never_crash(
        strings in (text(AGENTS), text(TASKS), text(INPUTS)).prop_map(|(a, b, c)| vec![a, b, c]),
        version in any::<u64>(),
        timeout in 0u32..50,
        with_out in any::<bool>(),
    ) {
        initialised();
        let args = Args::new(&strings);
        let lookups = [
            OtfResult::Ok, OtfResult::NullParameter, OtfResult::InvalidUtf8, OtfResult::InvalidArgument,
            OtfResult::UnknownAgent, OtfResult::NoModel, OtfResult::Checkpoint, OtfResult::Model,
        ];
        let mut json: *mut c_char = ptr::null_mut();
        let out = if with_out { &mut json as *mut *mut c_char } else { ptr::null_mut() };
        // SAFETY: every pointer is NULL or a live NUL-terminated string; `out` is NULL or live.
        let code = unsafe { otf_predict(args.ptr(0), args.ptr(1), args.ptr(2), out) };
        check(code, &lookups)?;
        prop_assert_eq!(code == OtfResult::Ok, !json.is_null());
        // SAFETY: NULL or a string this library returned, freed once.
        unsafe { otf_string_free(json) };

        // SAFETY: as above.
        check(unsafe { otf_force_update_agent(args.ptr(0)) }, &lookups)?;
        // SAFETY: as above.
        check(unsafe { otf_rollback_model(args.ptr(0), args.ptr(1), version) }, &lookups)?;

        let mut status: *mut c_char = ptr::null_mut();
        let out = if with_out { &mut status as *mut *mut c_char } else { ptr::null_mut() };
        // SAFETY: `out` is NULL or live.
        let code = unsafe { otf_get_training_status(out) };
        check(code, &[OtfResult::Ok, OtfResult::NullParameter])?;
        if code == OtfResult::Ok {
            // SAFETY: a string this library returned.
            let text = unsafe { CStr::from_ptr(status) }.to_str().unwrap().to_owned();
            prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
            // SAFETY: returned by the library, freed once.
            unsafe { otf_string_free(status) };
        }
        let mut metrics: *mut c_char = ptr::null_mut();
        let out = if with_out { &mut metrics as *mut *mut c_char } else { ptr::null_mut() };
        // SAFETY: `out` is NULL or live.
        let code = unsafe { otf_metrics_text(out) };
        check(code, &[OtfResult::Ok, OtfResult::NullParameter])?;
        if code == OtfResult::Ok {
            // SAFETY: a string this library returned.
            let text = unsafe { CStr::from_ptr(metrics) }.to_str().unwrap().to_owned();
            prop_assert!(text.contains("# TYPE onthefly_examples_received_total counter"), "{}", text);
            // SAFETY: returned by the library, freed once.
            unsafe { otf_string_free(metrics) };
        }
        // Paths: NULL, not UTF-8, a missing folder, or a file under target/
        // (never arbitrary text, which would write files anywhere).
        let exports = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-data/ffi-export.jsonl");
        let path = match version % 4 {
            0 => None,
            1 => Some(vec![0xff, 0xfe]),
            2 => Some(b"/no/such/folder/x.jsonl".to_vec()),
            _ => Some(exports.to_str().unwrap().as_bytes().to_vec()),
        };
        let path = Args::new(&[path]);
        let mut count = u64::MAX;
        // SAFETY: every pointer is NULL or a live NUL-terminated string; `count` is live.
        let code = unsafe { otf_export_dataset(args.ptr(0), args.ptr(1), path.ptr(0), &mut count) };
        check(code, &[&lookups[..], &[OtfResult::Io, OtfResult::Store]].concat())?;
        prop_assert_eq!(code == OtfResult::Ok, count != u64::MAX);
        let mut items: *mut c_char = ptr::null_mut();
        let out = if with_out { &mut items as *mut *mut c_char } else { ptr::null_mut() };
        // SAFETY: every pointer is NULL or a live NUL-terminated string; `out` is NULL or live.
        let code = unsafe { otf_next_for_review(args.ptr(0), args.ptr(1), timeout, out) };
        check(code, &lookups)?;
        prop_assert_eq!(code == OtfResult::Ok, !items.is_null());
        // SAFETY: NULL or a string this library returned, freed once.
        unsafe { otf_string_free(items) };
        let mut id = u64::MAX;
        // SAFETY: every pointer is NULL or a live NUL-terminated string; `id` is live.
        let code = unsafe { otf_label(version, args.ptr(2), timeout as i32 - 1, &mut id) };
        check(code, &lookups)?;
        prop_assert_eq!(code == OtfResult::Ok, id != u64::MAX);
        check(otf_skip(version), &lookups)?;
        check(otf_flush(1_000 + timeout), &[OtfResult::Ok, OtfResult::Timeout])?;
        check(otf_wait_for_idle(timeout), &[OtfResult::Ok, OtfResult::Timeout])?;
    }

    #[test]
    fn initialize_with_anything_never_crashes(config in text(CONFIGS)) {
        initialised();
        let args = Args::new(&[config]);
        // SAFETY: NULL or a live NUL-terminated string.
        let code = unsafe { otf_initialize(args.ptr(0)) };
        // Already running: the same configuration can only come from this file.
        check(code, &[OtfResult::InvalidConfig, OtfResult::InvalidUtf8, OtfResult::AlreadyInitialized])?;
    }

    #[test]
    fn handle_functions_never_crash(
        strings in example_strings(),
        score in number(),
        priority in prop_oneof![0i32..=3, any::<i32>()],
        version in any::<u64>(),
        timeout in 0u32..50,
        null_handle in prop::bool::weighted(0.2),
        with_out in any::<bool>(),
    ) {
        let handle = if null_handle { ptr::null() } else { opened() };
        let args = Args::new(&strings);
        // With a NULL handle every call is OTF_RESULT_NULL_PARAMETER, before any other check.
        let allowed = |codes: &[OtfResult]| -> Vec<OtfResult> {
            if null_handle { vec![OtfResult::NullParameter] } else { codes.to_vec() }
        };
        let lookups = LOOKUPS;
        // SAFETY: the handle is NULL or live; every pointer is NULL or a live
        // NUL-terminated string; `out` is NULL or a live u64 (the same below).
        let code = call_with_id_out(with_out, |out| unsafe {
            otf_coordinator_add_training_example(
                handle, args.ptr(0), args.ptr(1), args.ptr(2), args.ptr(3), score, score, priority,
                args.ptr(4), args.ptr(5), out,
            )
        })?;
        check(code, &allowed(INPUT))?;
        let mut outcome = OtfFeedback::NotNeeded;
        // SAFETY: as above.
        let code = unsafe {
            otf_coordinator_add_prediction_feedback(
                handle, args.ptr(0), args.ptr(1), args.ptr(2), args.ptr(3), score, args.ptr(4), args.ptr(5),
                &mut outcome,
            )
        };
        check(code, &allowed(INPUT))?;
        // SAFETY: as above.
        let code = unsafe {
            otf_coordinator_add_user_correction(
                handle, args.ptr(0), args.ptr(1), args.ptr(2), args.ptr(3), args.ptr(4), priority, args.ptr(5),
                ptr::null_mut(),
            )
        };
        check(code, &allowed(INPUT))?;

        let mut json: *mut c_char = ptr::null_mut();
        let out = if with_out { &mut json as *mut *mut c_char } else { ptr::null_mut() };
        // SAFETY: as above.
        let code = unsafe { otf_coordinator_predict(handle, args.ptr(0), args.ptr(1), args.ptr(2), out) };
        check(code, &allowed(&lookups))?;
        prop_assert_eq!(code == OtfResult::Ok, !json.is_null());
        // SAFETY: NULL or a string this library returned, freed once.
        unsafe { otf_string_free(json) };
        // SAFETY: as above.
        check(unsafe { otf_coordinator_force_update_agent(handle, args.ptr(0)) }, &allowed(&lookups))?;
        // SAFETY: as above.
        check(unsafe { otf_coordinator_rollback_model(handle, args.ptr(0), args.ptr(1), version) }, &allowed(&lookups))?;
        for text_out in [otf_coordinator_get_training_status, otf_coordinator_metrics_text] {
            let mut text: *mut c_char = ptr::null_mut();
            let out = if with_out { &mut text as *mut *mut c_char } else { ptr::null_mut() };
            // SAFETY: as above.
            let code = unsafe { text_out(handle, out) };
            check(code, &allowed(&[OtfResult::Ok, OtfResult::NullParameter]))?;
            prop_assert_eq!(code == OtfResult::Ok, !text.is_null());
            // SAFETY: NULL or a string this library returned, freed once.
            unsafe { otf_string_free(text) };
        }
        review_and_export(handle, &args, version, timeout, with_out, &allowed)?;
        // SAFETY: as above.
        check(unsafe { otf_coordinator_flush(handle, 1_000 + timeout) }, &allowed(&[OtfResult::Ok, OtfResult::Timeout]))?;
        // SAFETY: as above.
        check(unsafe { otf_coordinator_wait_for_idle(handle, timeout) }, &allowed(&[OtfResult::Ok, OtfResult::Timeout]))?;
    }

    #[test]
    fn opening_a_handle_with_anything_never_crashes(
        config in prop_oneof![
            2 => text(CONFIGS).prop_filter("no default data_dir", |c| c.is_some() && c.as_deref() != Some(b"{}")),
            1 => Just(Some(
                format!(r#"{{"device": "cpu", "data_dir": "target/test-data/ffi-props-new-{}"}}"#, std::process::id())
                    .into_bytes()
            )),
            1 => Just(Some(handle_config().to_vec())),
        ],
        with_out in any::<bool>(),
    ) {
        opened();
        let args = Args::new(&[config]);
        let mut handle: *mut OtfCoordinator = ptr::null_mut();
        let out = if with_out { &mut handle as *mut *mut OtfCoordinator } else { ptr::null_mut() };
        // SAFETY: a live NUL-terminated string; `out` is NULL or live.
        let code = unsafe { otf_coordinator_new(args.ptr(0), out) };
        // Only the folder of the handle already open is refused as in use.
        check(code, &[OtfResult::Ok, OtfResult::NullParameter, OtfResult::InvalidConfig, OtfResult::InvalidUtf8])?;
        prop_assert_eq!(code == OtfResult::Ok, !handle.is_null());
        // SAFETY: NULL or a handle just opened, with no call on it.
        unsafe { otf_coordinator_free(handle) };
    }
}

#[test]
fn the_environments_configuration_opens_a_handle_once_given_a_folder() {
    let mut json: *mut c_char = ptr::null_mut();
    // SAFETY: a live out-parameter.
    assert_eq!(unsafe { otf_config_from_environment(&mut json) }, OtfResult::Ok);
    // SAFETY: a string this library returned.
    let text = unsafe { CStr::from_ptr(json) }.to_str().unwrap().to_owned();
    // SAFETY: returned by the library, freed once.
    unsafe { otf_string_free(json) };
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(config["update_threshold"], 50, "{config}");
    config["data_dir"] = format!("target/test-data/ffi-env-{}", std::process::id()).into();
    let config = CString::new(config.to_string()).unwrap();
    let mut handle: *mut OtfCoordinator = ptr::null_mut();
    // SAFETY: a live string and out-parameter.
    assert_eq!(
        unsafe { otf_coordinator_new(config.as_ptr(), &mut handle) },
        OtfResult::Ok
    );
    // SAFETY: the handle just opened, no call on it.
    unsafe { otf_coordinator_free(handle) };
    // SAFETY: NULL out-parameter.
    assert_eq!(
        unsafe { otf_config_from_environment(ptr::null_mut()) },
        OtfResult::NullParameter
    );
}

#[test]
fn settings_go_on_top_of_the_environment_and_the_whole_is_checked() {
    let read = |settings: Option<&str>| -> (OtfResult, Option<serde_json::Value>) {
        let settings = settings.map(|s| CString::new(s).unwrap());
        let mut json: *mut c_char = ptr::null_mut();
        let at = settings.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        // SAFETY: a live string (or NULL) and out-parameter.
        let code = unsafe { otf_config_from_environment_with(at, &mut json) };
        if json.is_null() {
            return (code, None);
        }
        // SAFETY: a string this library returned, read then freed once.
        let text = unsafe { CStr::from_ptr(json) }.to_str().unwrap().to_owned();
        // SAFETY: returned by the library, freed once.
        unsafe { otf_string_free(json) };
        (code, Some(serde_json::from_str(&text).unwrap()))
    };
    let (code, config) = read(Some(r#"{"update_threshold": 7, "text_model": {"seed": 3}}"#));
    assert_eq!(code, OtfResult::Ok);
    let config = config.unwrap();
    assert_eq!(
        (
            config["update_threshold"].as_u64(),
            config["text_model"]["seed"].as_u64()
        ),
        (Some(7), Some(3))
    );
    assert_eq!(read(None).0, OtfResult::Ok);
    // Checked as a whole: a threshold above the buffer is refused.
    assert_eq!(
        read(Some(r#"{"max_buffer_size": 10}"#)),
        (OtfResult::InvalidConfig, None)
    );
    assert_eq!(read(Some("[1]")).0, OtfResult::InvalidConfig);
    // SAFETY: NULL out-parameter.
    assert_eq!(
        unsafe { otf_config_from_environment_with(ptr::null(), ptr::null_mut()) },
        OtfResult::NullParameter
    );
}
