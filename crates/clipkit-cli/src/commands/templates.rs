//! The prompt-template options shared by commands that classify zero-shot.

use clipkit::zeroshot::TemplateSet;

/// `--template` (repeatable) and `--template-set`.
#[derive(clap::Args, Debug, Clone)]
pub struct TemplateArgs {
    /// Prompt template with '{}' where the label goes (repeatable); several are ensembled.
    #[arg(long = "template", value_name = "TEMPLATE", allow_hyphen_values = true)]
    templates: Vec<String>,
    /// Built-in template set: simple ("a photo of a {}.") or imagenet80 (the CLIP paper's 80).
    #[arg(long, alias = "templates", value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(TemplateSet::NAMES))]
    template_set: Option<String>,
}

impl TemplateArgs {
    /// Explicit templates and the named set together; "simple" when neither is given.
    pub fn templates(&self) -> Vec<String> {
        let mut templates = self.templates.clone();
        let set = self
            .template_set
            .as_deref()
            .and_then(TemplateSet::from_name);
        if let Some(set) = set {
            templates.extend(set.templates());
        }
        if templates.is_empty() {
            templates = TemplateSet::Simple.templates();
        }
        templates
    }
}
