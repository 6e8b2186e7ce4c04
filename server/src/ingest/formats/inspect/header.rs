//! The typed header of an Inspect log: what caplens reads of `eval` (EvalSpec), `plan` and
//! `status`, field by field; the rest is skipped unparsed.

use super::typed::{object, Fields, Scalar, ScalarSeed};
use crate::ingest::limits::KeptBudget;
use serde::de::MapAccess;

/// The run description of a log, as much of it as caplens uses: `eval` (EvalSpec), `plan`'s
/// generation config and `status` (`success`, `cancelled`, `error`, `started`). Read field by
/// field; the rest of the header (the plan's steps, results, stats) is skipped unparsed.
#[derive(Debug, Default)]
pub(super) struct Header {
    pub(super) eval: EvalSpec,
    pub(super) plan: Plan,
    pub(super) status: Option<String>,
}

/// What caplens reads of an EvalSpec.
#[derive(Debug, Default)]
pub(super) struct EvalSpec {
    pub(super) model: Option<String>,
    pub(super) task: Option<String>,
    pub(super) eval_id: Option<String>,
    pub(super) run_id: Option<String>,
    pub(super) task_id: Option<String>,
    /// `packages.inspect_ai`.
    pub(super) inspect_version: Option<String>,
    /// `model_generate_config`.
    pub(super) generate: GenerateConfig,
    /// `config.epochs`.
    pub(super) epochs: Option<i64>,
}

/// Generation settings as given: `None` when absent or null. A setting of another type is kept
/// (and reads as no value), so that an older `plan.config` does not stand in for it.
#[derive(Debug, Default)]
pub(super) struct GenerateConfig {
    pub(super) temperature: Option<Scalar>,
    pub(super) top_p: Option<Scalar>,
    pub(super) max_tokens: Option<Scalar>,
}

#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) config: GenerateConfig,
}

#[derive(Debug, Default)]
struct Packages {
    inspect_ai: Option<String>,
}

#[derive(Debug, Default)]
struct EvalConfig {
    epochs: Option<i64>,
}

impl Fields for Header {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        match key {
            "eval" => self.eval = map.next_value_seed(object(budget))?,
            "plan" => self.plan = map.next_value_seed(object(budget))?,
            "status" => self.status = map.next_value_seed(ScalarSeed(budget))?.text(),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Fields for EvalSpec {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        let text = |map: &mut A| Ok::<_, A::Error>(map.next_value_seed(ScalarSeed(budget))?.text());
        match key {
            "model" => self.model = text(map)?,
            "task" => self.task = text(map)?,
            "eval_id" => self.eval_id = text(map)?,
            "run_id" => self.run_id = text(map)?,
            "task_id" => self.task_id = text(map)?,
            "packages" => {
                self.inspect_version = map.next_value_seed(object::<Packages>(budget))?.inspect_ai
            }
            "model_generate_config" => self.generate = map.next_value_seed(object(budget))?,
            "config" => self.epochs = map.next_value_seed(object::<EvalConfig>(budget))?.epochs,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Fields for GenerateConfig {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        let slot = match key {
            "temperature" => &mut self.temperature,
            "top_p" => &mut self.top_p,
            "max_tokens" => &mut self.max_tokens,
            _ => return Ok(false),
        };
        *slot = Some(map.next_value_seed(ScalarSeed(budget))?).filter(|v| *v != Scalar::Null);
        Ok(true)
    }
}

impl Fields for Plan {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        if key != "config" {
            return Ok(false);
        }
        self.config = map.next_value_seed(object(budget))?;
        Ok(true)
    }
}

impl Fields for Packages {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        if key != "inspect_ai" {
            return Ok(false);
        }
        self.inspect_ai = map.next_value_seed(ScalarSeed(budget))?.text();
        Ok(true)
    }
}

impl Fields for EvalConfig {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        if key != "epochs" {
            return Ok(false);
        }
        self.epochs = map.next_value_seed(ScalarSeed(budget))?.integer();
        Ok(true)
    }
}
