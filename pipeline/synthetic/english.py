"""English sentence generator: simple grammar templates over a few hundred common words.

The vocabulary is kept moderate on purpose (letters a-z, apostrophe, space; sentences of 3-12
words) so a small CPU-trained CTC model can learn it in minutes; the templates make the word
order varied and sentence-like rather than random word salad.
"""

from __future__ import annotations

import random

NAMES = ("anna", "peter", "mary", "john", "lucy", "david", "emma", "tom", "sarah", "james", "alice",
         "robert", "helen", "george", "clara", "henry", "laura", "frank", "grace", "paul")
PRONOUN_SUBJECTS = ("i", "you", "he", "she", "we", "they")
PRONOUN_OBJECTS = ("me", "you", "him", "her", "us", "them", "it")
POSSESSIVES = ("my", "your", "his", "her", "our", "their")
DETERMINERS = ("the", "the", "the", "a", "this", "that", "every", "one", *POSSESSIVES)
# (singular, plural)
NOUNS = (
    ("man", "men"), ("woman", "women"), ("child", "children"), ("boy", "boys"), ("girl", "girls"),
    ("friend", "friends"), ("teacher", "teachers"), ("doctor", "doctors"), ("farmer", "farmers"),
    ("king", "kings"), ("queen", "queens"), ("brother", "brothers"), ("sister", "sisters"),
    ("mother", "mothers"), ("father", "fathers"), ("neighbour", "neighbours"), ("stranger", "strangers"),
    ("dog", "dogs"), ("cat", "cats"), ("horse", "horses"), ("bird", "birds"), ("fish", "fish"),
    ("cow", "cows"), ("house", "houses"), ("room", "rooms"), ("door", "doors"), ("window", "windows"),
    ("table", "tables"), ("chair", "chairs"), ("bed", "beds"), ("book", "books"), ("letter", "letters"),
    ("paper", "papers"), ("box", "boxes"), ("bag", "bags"), ("key", "keys"), ("cup", "cups"),
    ("glass", "glasses"), ("plate", "plates"), ("bread", "bread"), ("apple", "apples"), ("cake", "cakes"),
    ("coffee", "coffee"), ("milk", "milk"), ("water", "water"), ("tree", "trees"), ("flower", "flowers"),
    ("garden", "gardens"), ("field", "fields"), ("river", "rivers"), ("lake", "lakes"), ("hill", "hills"),
    ("mountain", "mountains"), ("road", "roads"), ("street", "streets"), ("bridge", "bridges"),
    ("city", "cities"), ("town", "towns"), ("village", "villages"), ("market", "markets"),
    ("shop", "shops"), ("school", "schools"), ("church", "churches"), ("station", "stations"),
    ("train", "trains"), ("car", "cars"), ("boat", "boats"), ("ship", "ships"), ("ball", "balls"),
    ("song", "songs"), ("story", "stories"), ("picture", "pictures"), ("game", "games"),
    ("coat", "coats"), ("hat", "hats"), ("shoe", "shoes"), ("ring", "rings"), ("clock", "clocks"),
    ("lamp", "lamps"), ("fire", "fires"), ("stone", "stones"), ("wall", "walls"), ("gate", "gates"),
    ("window", "windows"), ("night", "nights"), ("morning", "mornings"), ("day", "days"),
    ("week", "weeks"), ("year", "years"), ("island", "islands"), ("forest", "forests"),
    ("beach", "beaches"), ("kitchen", "kitchens"), ("office", "offices"), ("money", "money"),
    ("music", "music"), ("answer", "answers"), ("question", "questions"), ("idea", "ideas"),
    ("plan", "plans"), ("voice", "voices"), ("face", "faces"), ("hand", "hands"), ("name", "names"),
)
ADJECTIVES = (
    "old", "young", "new", "small", "big", "little", "large", "long", "short", "tall", "red", "blue",
    "green", "white", "black", "brown", "yellow", "bright", "dark", "warm", "cold", "quiet", "loud",
    "happy", "sad", "kind", "busy", "empty", "full", "heavy", "light", "clean", "strange", "famous",
    "beautiful", "simple", "quick", "slow", "early", "late", "open", "broken", "wooden", "golden",
    "gentle", "careful", "hungry", "tired", "clever", "friendly",
)
# (base, past) for verbs that take an object
TRANSITIVE = (
    ("see", "saw"), ("find", "found"), ("take", "took"), ("bring", "brought"), ("buy", "bought"),
    ("sell", "sold"), ("make", "made"), ("build", "built"), ("open", "opened"), ("close", "closed"),
    ("carry", "carried"), ("paint", "painted"), ("read", "read"), ("write", "wrote"), ("love", "loved"),
    ("like", "liked"), ("want", "wanted"), ("need", "needed"), ("call", "called"), ("help", "helped"),
    ("watch", "watched"), ("follow", "followed"), ("leave", "left"), ("keep", "kept"), ("lose", "lost"),
    ("hold", "held"), ("give", "gave"), ("send", "sent"), ("show", "showed"), ("clean", "cleaned"),
    ("fix", "fixed"), ("move", "moved"), ("visit", "visited"), ("remember", "remembered"),
    ("forget", "forgot"), ("hear", "heard"), ("meet", "met"), ("cook", "cooked"), ("eat", "ate"),
    ("drink", "drank"), ("pull", "pulled"), ("push", "pushed"), ("catch", "caught"), ("throw", "threw"),
    ("wash", "washed"), ("draw", "drew"), ("choose", "chose"), ("teach", "taught"),
)
INTRANSITIVE = (
    ("walk", "walked"), ("run", "ran"), ("sleep", "slept"), ("sit", "sat"), ("stand", "stood"),
    ("wait", "waited"), ("laugh", "laughed"), ("smile", "smiled"), ("sing", "sang"), ("dance", "danced"),
    ("swim", "swam"), ("travel", "travelled"), ("work", "worked"), ("play", "played"), ("rest", "rested"),
    ("arrive", "arrived"), ("return", "returned"), ("listen", "listened"), ("shout", "shouted"),
    ("jump", "jumped"), ("stay", "stayed"), ("fall", "fell"), ("cry", "cried"), ("live", "lived"),
)
ADVERBS = ("slowly", "quickly", "quietly", "loudly", "carefully", "happily", "again", "today",
           "yesterday", "early", "late", "together", "alone", "often", "never", "always", "soon",
           "suddenly", "gently", "finally")
PREPOSITIONS = ("in", "on", "under", "near", "behind", "beside", "across", "through", "into",
                "from", "to", "with", "without", "after", "before", "over", "around", "at")
MODALS = ("will", "can", "could", "should", "would", "must", "might", "didn't", "can't", "won't",
          "couldn't", "wouldn't", "shouldn't")
TIMES = ("this morning", "last night", "every day", "on sunday", "in the evening", "at noon",
         "after dinner", "before breakfast", "next week", "last year", "in the spring", "all day")
FEELINGS = ("happy", "sad", "tired", "hungry", "busy", "quiet", "cold", "warm", "late", "early",
            "kind", "careful", "friendly")
SAYING = ("said", "thought", "knew", "told me", "heard", "believed")
WH = ("where", "why", "when", "how")


class EnglishSentences:
    """Lower-case English sentences, 3-12 words, reproducible from a random.Random."""

    min_words = 3
    max_words = 12

    def __init__(self, rng: random.Random):
        self.rng = rng

    def sentence(self) -> str:
        while True:
            words = self._template()().split()
            if self.min_words <= len(words) <= self.max_words:
                return " ".join(words)

    def is_question(self, sentence: str) -> bool:
        return sentence.split()[0] in (*WH, "did", "can", "will", "could", "would")

    # -- phrases ---------------------------------------------------------------------------------
    def _pick(self, items):
        return self.rng.choice(items)

    def _maybe(self, p: float, text_fn) -> str:
        return text_fn() if self.rng.random() < p else ""

    def noun_phrase(self, plural: bool | None = None) -> str:
        singular, many = self._pick(NOUNS)
        if plural is None:
            plural = self.rng.random() < 0.3
        adjective = self._maybe(0.45, lambda: self._pick(ADJECTIVES))
        if plural:
            det = self._pick(("the", "the", "some", "many", "two", "three", "those", "these", *POSSESSIVES))
            return f"{det} {adjective} {many}"
        det = self._pick(DETERMINERS)
        if det == "a" and (adjective or singular)[0] in "aeiou":
            det = "an"
        return f"{det} {adjective} {singular}"

    def subject(self) -> str:
        roll = self.rng.random()
        if roll < 0.3:
            return self._pick(PRONOUN_SUBJECTS)
        if roll < 0.5:
            return self._pick(NAMES)
        if roll < 0.6:
            return f"{self._pick(NAMES)}'s {self._pick(NOUNS)[0]}"
        return self.noun_phrase()

    def obj(self) -> str:
        roll = self.rng.random()
        if roll < 0.2:
            return self._pick(PRONOUN_OBJECTS)
        if roll < 0.3:
            return self._pick(NAMES)
        return self.noun_phrase()

    def place(self) -> str:
        return f"{self._pick(PREPOSITIONS)} {self.noun_phrase(plural=False)}"

    def tail(self) -> str:
        return " ".join(filter(None, [
            self._maybe(0.5, self.place),
            self._maybe(0.25, lambda: self._pick((*ADVERBS, *TIMES))),
        ]))

    # -- templates ---------------------------------------------------------------------------------
    def _template(self):
        return self.rng.choices(
            [self._transitive, self._intransitive, self._modal, self._there_was, self._reported,
             self._question, self._description, self._its, self._imperative, self._and],
            weights=[24, 14, 12, 6, 6, 8, 8, 6, 6, 10],
        )[0]

    def _transitive(self) -> str:
        return f"{self.subject()} {self._pick(TRANSITIVE)[1]} {self.obj()} {self.tail()}"

    def _intransitive(self) -> str:
        return f"{self.subject()} {self._pick(INTRANSITIVE)[1]} {self.tail()}"

    def _modal(self) -> str:
        verb = self.rng.choice([lambda: f"{self._pick(TRANSITIVE)[0]} {self.obj()}",
                                lambda: self._pick(INTRANSITIVE)[0]])()
        return f"{self.subject()} {self._pick(MODALS)} {verb} {self.tail()}"

    def _there_was(self) -> str:
        return f"there was {self.noun_phrase(plural=False)} {self.place()}"

    def _reported(self) -> str:
        clause = self.rng.choice([self._intransitive, self._transitive])()
        return f"{self._pick((*NAMES, *PRONOUN_SUBJECTS))} {self._pick(SAYING)} that {clause}"

    def _question(self) -> str:
        start = self._pick(("did", "can", "will", "could", "would"))
        if self.rng.random() < 0.5:
            start = f"{self._pick(WH)} {start}"
        return f"{start} {self.subject()} {self._pick(TRANSITIVE)[0]} {self.obj()} {self._maybe(0.4, self.place)}"

    def _description(self) -> str:
        first = self.noun_phrase(plural=False)
        was = self._pick(("was", "is", "seemed", "looked"))
        return f"{first} {self._maybe(0.4, lambda: 'of ' + self.noun_phrase(plural=False))} {was} {self._pick(ADJECTIVES)}"

    def _its(self) -> str:
        opener = self._pick(("it's", "it was", "it isn't", "that's"))
        return f"{opener} {self._pick(FEELINGS)} {self._maybe(0.6, lambda: 'to ' + self._pick(TRANSITIVE)[0] + ' ' + self.obj())}"

    def _imperative(self) -> str:
        please = self._maybe(0.4, lambda: "please")
        return f"{please} {self._pick(TRANSITIVE)[0]} {self.obj()} {self.tail()}"

    def _and(self) -> str:
        joiner = self._pick(("and", "but", "because", "so", "while", "when"))
        return f"{self._intransitive()} {joiner} {self.rng.choice([self._transitive, self._intransitive])()}"


def vocabulary() -> set[str]:
    """Every word the generator can produce (for documentation and tests)."""
    words = set()
    for group in (NAMES, PRONOUN_SUBJECTS, PRONOUN_OBJECTS, DETERMINERS, ADJECTIVES, ADVERBS, PREPOSITIONS,
                  MODALS, FEELINGS, WH):
        words.update(group)
    for pair_group in (NOUNS, TRANSITIVE, INTRANSITIVE):
        for pair in pair_group:
            words.update(pair)
    for phrase in (*TIMES, *SAYING):
        words.update(phrase.split())
    words.update({"an", "some", "many", "two", "three", "those", "these", "there", "was", "is", "seemed",
                  "looked", "that", "of", "it's", "it", "isn't", "that's", "to", "please", "and", "but",
                  "because", "so", "while", "when", "did", "can", "will", "could", "would"})
    words.update(f"{name}'s" for name in NAMES)
    return words
