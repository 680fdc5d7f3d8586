//! The shapes world: a procedural, captioned data set that needs no download.
//!
//! Each image shows one to three coloured shapes on a muted background; each caption says
//! what is there ("two red circles", "a small blue square on the left", "a photo of three
//! yellow stars", "a red circle and a green star"). The world is seeded and random-access:
//! [`ShapesWorld::sample`] of an index always gives the same pixels and captions, so any
//! sample can be regenerated on any thread and a resumed training run sees the same
//! stream.
//!
//! Splits: [`Split::Train`] never shows a (colour, shape) combination from
//! [`held_out_combinations`]; [`Split::Test`] draws from the same distribution with an
//! independent random stream; [`Split::Unseen`] builds every object from the held-out
//! combinations, to test whether a model composes colours and shapes it only saw apart.
//!
//! Layouts: [`Layout::Mixed`] (training) mixes one to three groups. Evaluation asks single
//! questions of simpler scenes, where each attribute has exactly one right answer:
//! [`Layout::SingleGroup`] scenes (one colour, one shape, one size, a count of 1–3) for
//! colour, shape and count, and [`Layout::SingleObject`] scenes for position.

mod caption;
mod claim;
mod folder;
mod render;
mod scene;
mod vocab;

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use caption::{
    attribute_captions, attribute_phrasings, canonical_caption, captions, group_phrase,
    join_phrases, one_group_captions, with_article, PREFIXES,
};
pub use claim::Claim;
pub use folder::write_shapes_folder;
pub use render::render;
use scene::Drawn;
pub use scene::{Group, Layout, Object, Scene};
pub use vocab::{
    held_out_combinations, is_held_out, rgb_distance, Colour, Position, Shape, Size, BACKGROUNDS,
    COUNT_WORDS, HELD_OUT_COUNT, MAX_COUNT,
};

use crate::error::{Error, Result};

/// Which part of the world to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training scenes: no held-out (colour, shape) combination ever appears.
    Train,
    /// Scenes from the training distribution, from an independent random stream.
    Test,
    /// Scenes made only of held-out (colour, shape) combinations.
    Unseen,
}

impl Split {
    /// Every split.
    pub const ALL: [Split; 3] = [Split::Train, Split::Test, Split::Unseen];

    /// The split's name on the command line (`train`, `test`, `unseen`).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
            Split::Unseen => "unseen",
        }
    }

    /// Looks a split up by name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// How a [`ShapesWorld`] draws its samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShapesConfig {
    /// Side of the square images in pixels (default 64; 16 to 4096).
    pub image_size: u32,
    /// Seed of the random stream (default 0).
    pub seed: u64,
    /// Which split (default [`Split::Train`]).
    pub split: Split,
    /// Which scenes (default [`Layout::Mixed`]).
    pub layout: Layout,
    /// Scenes per family of variants (default 1: every scene independent). With `F` > 1
    /// the indices `kF..(k+1)F` show one layout and counts, the first group running over
    /// two colours × ⌈F/2⌉ shapes: hard negatives for contrastive training, which
    /// otherwise tells most scenes of a batch apart by colour alone, and which must now
    /// bind colour and shape to the same object. 1 to [`MAX_FAMILY`].
    pub family: usize,
    /// Chance that a scene of several groups is captioned by one group only (default 0:
    /// every caption names every group). Trained on whole-scene captions alone, a model
    /// reads "a red heart" as "nothing but a red heart" and, searched with it, ranks lone
    /// red shapes above scenes holding a red heart among others; one-group captions teach
    /// that the phrase is true of any scene holding one. The group named is the scene's
    /// focus: the one a family varies, so the caption still tells members apart. 0 to 1.
    pub one_group: f64,
    /// Chance that a caption names one attribute of the scene's focus group only, its
    /// colour ("a red shape") or its shape ("two stars") (default 0). Whole-object captions
    /// alone let a model learn each seen (colour, shape) pair as a unit; naming the
    /// attributes apart teaches them as parts it can put together for pairs never seen.
    /// 0 to 1.
    pub attribute: f64,
    /// Chance that a family of variants is a family of binding swaps (default 0): each odd
    /// member is the member before it with the shapes of its focus group and another group
    /// traded ("a red circle and a blue star" beside "a red star and a blue circle"), so
    /// only binding colour to shape tells the two apart. Needs a family of two or more;
    /// a scene of one group, or a swap leaving the split, keeps the member's own scene.
    /// 0 to 1.
    pub swap: f64,
    /// How far an object's fill may stray from its colour's nominal value, in levels per
    /// channel (default 0: the usual jitter of a few levels). With S > 0 every fill is
    /// drawn within ±S and kept only while it is still nearer its own colour's nominal
    /// value than any other's and stands out from the background, so each colour word
    /// covers a region of shades rather than one point and a shape is seen in more mixes
    /// of the three channels, while every object stays nearest the colour its captions
    /// name (a Train object is never nearer a held-out pair's colour than its own).
    pub colour_spread: u8,
}

/// The largest [`ShapesConfig::family`]: two colours × three shapes.
pub const MAX_FAMILY: usize = 6;

impl Default for ShapesConfig {
    fn default() -> Self {
        ShapesConfig {
            image_size: 64,
            seed: 0,
            split: Split::Train,
            layout: Layout::Mixed,
            family: 1,
            one_group: 0.0,
            attribute: 0.0,
            swap: 0.0,
            colour_spread: 0,
        }
    }
}

/// Smallest and largest image side accepted.
const SIZE_RANGE: std::ops::RangeInclusive<u32> = 16..=4096;

/// One generated example.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The rendered image.
    pub image: RgbImage,
    /// The caption to train on, drawn deterministically: one of `captions` or, as
    /// [`ShapesConfig::one_group`] says, a phrasing naming only the scene's focus group.
    pub caption: String,
    /// Every phrasing of the whole scene the grammar allows (all of them true of the image).
    pub captions: Vec<String>,
    /// What the image shows.
    pub scene: Scene,
}

/// A sample as [`ShapesWorld::described`] gives it: everything but the image.
#[derive(Debug, Clone)]
pub struct Described {
    /// What the image shows.
    pub scene: Scene,
    /// The caption to train on (as [`Sample::caption`]).
    pub caption: String,
    /// Every phrasing of the whole scene (as [`Sample::captions`]).
    pub captions: Vec<String>,
    /// What `caption` says, to test it against other scenes.
    pub claim: Claim,
}

/// A seeded, random-access generator of captioned images.
#[derive(Debug, Clone)]
pub struct ShapesWorld {
    config: ShapesConfig,
}

impl ShapesWorld {
    /// A world drawing samples as `config` says; errors on an image size outside 16..=4096.
    pub fn new(config: ShapesConfig) -> Result<Self> {
        if !SIZE_RANGE.contains(&config.image_size) {
            return Err(Error::InvalidArgument(format!(
                "shapes image size {} is outside {}..={}",
                config.image_size,
                SIZE_RANGE.start(),
                SIZE_RANGE.end()
            )));
        }
        if !(1..=MAX_FAMILY).contains(&config.family) {
            return Err(Error::InvalidArgument(format!(
                "a shapes family of {} scenes is outside 1..={MAX_FAMILY}",
                config.family
            )));
        }
        for (chance, what) in [
            (config.one_group, "one-group captions"),
            (config.attribute, "attribute captions"),
            (config.swap, "binding swaps"),
        ] {
            if !(0.0..=1.0).contains(&chance) {
                return Err(Error::InvalidArgument(format!(
                    "a chance of {what} of {chance} is outside 0..=1"
                )));
            }
        }
        Ok(ShapesWorld { config })
    }

    /// The world's configuration.
    pub fn config(&self) -> &ShapesConfig {
        &self.config
    }

    /// The scene of sample `index`, without rendering it.
    pub fn scene(&self, index: u64) -> Scene {
        self.draw(index).0.scene
    }

    /// Sample `index`: the same image and captions for the same configuration and index.
    pub fn sample(&self, index: u64) -> Sample {
        let Described {
            scene,
            caption,
            captions,
            claim: _,
        } = self.described(index);
        Sample {
            image: render(&scene, self.config.image_size),
            caption,
            captions,
            scene,
        }
    }

    /// Sample `index` without its image: the scene, the caption drawn for it and what
    /// that caption claims.
    pub fn described(&self, index: u64) -> Described {
        let (Drawn { scene, focus }, mut rng) = self.draw(index);
        let captions = captions(&scene);
        let groups = scene.groups();
        let focus = focus.and_then(|(colour, shape)| {
            groups
                .iter()
                .find(|g| g.colour == colour && g.shape == shape)
        });
        // With one-group captions off, no draw is made, so the stream (and every caption)
        // stays what it was before they existed.
        let one_group = match focus {
            Some(group) if self.config.one_group > 0.0 && groups.len() > 1 => {
                let pick = rng.random_bool(self.config.one_group);
                pick.then(|| vec![(Claim::group(group), one_group_captions(group))])
            }
            _ => None,
        };
        // Likewise no draw with attribute captions off.
        let attribute = match focus {
            Some(group) if self.config.attribute > 0.0 => {
                let pick = rng.random_bool(self.config.attribute);
                pick.then(|| attribute_phrasings(&scene, group).to_vec())
            }
            _ => None,
        };
        let pool = attribute
            .or(one_group)
            .unwrap_or_else(|| vec![(Claim::scene(&scene), captions.clone())]);
        let options: Vec<(&Claim, &String)> = pool
            .iter()
            .flat_map(|(claim, phrasings)| phrasings.iter().map(move |p| (claim, p)))
            .collect();
        // One draw over the pool's phrasings, in the order they always had.
        let (claim, caption) = options[rng.random_range(0..options.len())];
        let (claim, caption) = (claim.clone(), caption.clone());
        Described {
            scene,
            caption,
            captions,
            claim,
        }
    }

    /// The scene of sample `index` and the sample's own stream, positioned after it.
    fn draw(&self, index: u64) -> (Drawn, ChaCha8Rng) {
        let ShapesConfig {
            split,
            layout,
            family,
            ..
        } = self.config;
        let mut own = self.rng(index, Stream::Sample);
        let mut drawn = if family == 1 {
            scene::sample_scene(&mut own, split, layout)
        } else {
            let size = family as u64;
            let member = (index % size) as usize;
            let member_scene = |index: u64, member: usize, own: &mut ChaCha8Rng| {
                let mut shared = self.rng(index / size, Stream::Family);
                scene::sample_family_member(&mut shared, own, member, family, split, layout)
            };
            // The swap is decided on a stream of its own, so with swaps off every draw
            // stays what it was before they existed.
            let swapped = (self.config.swap > 0.0 && member % 2 == 1)
                .then(|| self.rng(index / size, Stream::Swap))
                .and_then(|mut pick| {
                    pick.random_bool(self.config.swap).then(|| {
                        let mut partner_own = self.rng(index - 1, Stream::Sample);
                        member_scene(index - 1, member - 1, &mut partner_own)
                    })
                })
                .and_then(|partner| scene::swap_shapes(partner, split));
            match swapped {
                Some(drawn) => drawn,
                None => member_scene(index, member, &mut own),
            }
        };
        if self.config.colour_spread > 0 {
            let mut pick = self.rng(index, Stream::Colour);
            scene::spread_colours(&mut drawn.scene, self.config.colour_spread, &mut pick);
        }
        (drawn, own)
    }

    /// A random stream: the key holds the seed, split, layout and which kind of stream,
    /// the ChaCha stream number is the sample's (or family's) index, so samples are
    /// independent and random-access.
    fn rng(&self, index: u64, stream: Stream) -> ChaCha8Rng {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.config.seed.to_le_bytes());
        key[8] = self.config.split as u8 + 1;
        key[9] = self.config.layout as u8 + 1;
        key[10] = stream as u8;
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(index);
        rng
    }
}

/// The two kinds of random stream a world draws from.
#[derive(Debug, Clone, Copy)]
enum Stream {
    /// One sample's own choices.
    Sample = 0,
    /// What a family of variants shares.
    Family = 1,
    /// Whether a family is a family of binding swaps.
    Swap = 2,
    /// Spread objects' fills (drawn apart, so with no spread every draw stays what it was).
    Colour = 3,
}

#[cfg(test)]
mod tests;
