"""Other languages for Common Voice style corpora: small embedded phrase lists per language,
combined as SUBJECT VERB OBJECT [COMPLEMENT] [CONJUNCTION SUBJECT VERB OBJECT], spoken with that
language's espeak-ng voices. Slots are inflected already (accusative objects in German), so the
sentences are grammatical while staying small and learnable.
"""

from __future__ import annotations

import random

from pipeline.synthetic.english import EnglishSentences

PHRASES = {
    "de": {
        "subjects": ("der Hund", "die Katze", "mein Bruder", "meine Schwester", "ein alter Mann", "die junge Frau",
                     "das Kind", "unser Lehrer", "der Bäcker", "die Ärztin", "mein Nachbar", "Anna", "Peter",
                     "der kleine Junge", "die Familie", "er", "sie", "wir"),
        "verbs": ("sieht", "kauft", "findet", "trägt", "sucht", "öffnet", "nimmt", "malt", "braucht",
                  "verkauft", "vergisst", "bringt", "liest", "holt"),
        "verbs_plural": ("sehen", "kaufen", "finden", "tragen", "suchen", "öffnen", "nehmen", "malen",
                         "brauchen", "verkaufen", "vergessen", "bringen", "lesen", "holen"),
        "objects": ("den Ball", "einen Apfel", "das Buch", "die Tür", "ein Brot", "den Schlüssel", "die Zeitung",
                    "einen Brief", "das Fenster", "die Tasche", "ein Bild", "den Hut", "eine Blume", "das Auto",
                    "einen Stuhl", "die Milch"),
        "complements": ("im Garten", "am Morgen", "jeden Tag", "mit großer Freude", "nach der Schule", "heute",
                        "sehr langsam", "in der Stadt", "am Abend", "vor dem Haus", "im Winter", "gestern"),
        "conjunctions": ("und", "aber", "denn"),
    },
    "fr": {
        "subjects": ("le chien", "le chat", "mon frère", "ma sœur", "un vieil homme", "la jeune femme",
                     "l'enfant", "notre professeur", "le boulanger", "le médecin", "mon voisin", "Anne", "Pierre",
                     "le petit garçon", "la famille", "il", "elle"),
        "subjects_plural": ("nous",),
        "verbs": ("regarde", "achète", "trouve", "porte", "cherche", "ouvre", "prend", "peint", "vend",
                  "oublie", "apporte", "lit", "aime"),
        "verbs_plural": ("regardons", "achetons", "trouvons", "portons", "cherchons", "ouvrons", "prenons",
                         "peignons", "vendons", "oublions", "apportons", "lisons", "aimons"),
        "objects": ("le ballon", "une pomme", "le livre", "la porte", "du pain", "la clé", "le journal",
                    "une lettre", "la fenêtre", "le sac", "un tableau", "le chapeau", "une fleur", "la voiture",
                    "une chaise", "le lait"),
        "complements": ("dans le jardin", "ce matin", "tous les jours", "avec plaisir", "après l'école",
                        "aujourd'hui", "très lentement", "en ville", "le soir", "devant la maison", "en hiver",
                        "hier"),
        "conjunctions": ("et", "mais", "puis"),
    },
    "es": {
        "subjects": ("el perro", "el gato", "mi hermano", "mi hermana", "un hombre viejo", "la mujer joven",
                     "el niño", "nuestro profesor", "el panadero", "la doctora", "mi vecino", "Ana", "Pedro",
                     "el chico pequeño", "la familia", "él", "ella"),
        "subjects_plural": ("nosotros",),
        "verbs": ("mira", "compra", "encuentra", "lleva", "busca", "abre", "toma", "pinta", "vende",
                  "olvida", "trae", "lee", "quiere"),
        "verbs_plural": ("miramos", "compramos", "encontramos", "llevamos", "buscamos", "abrimos", "tomamos",
                         "pintamos", "vendemos", "olvidamos", "traemos", "leemos", "queremos"),
        "objects": ("la pelota", "una manzana", "el libro", "la puerta", "el pan", "la llave", "el periódico",
                    "una carta", "la ventana", "la bolsa", "un cuadro", "el sombrero", "una flor", "el coche",
                    "una silla", "la leche"),
        "complements": ("en el jardín", "esta mañana", "todos los días", "con alegría", "después de la escuela",
                        "hoy", "muy despacio", "en la ciudad", "por la noche", "delante de la casa",
                        "en invierno", "ayer"),
        "conjunctions": ("y", "pero", "luego"),
    },
    "it": {
        "subjects": ("il cane", "il gatto", "mio fratello", "mia sorella", "un uomo anziano", "la ragazza",
                     "il bambino", "il nostro maestro", "il fornaio", "la dottoressa", "il mio vicino", "Anna",
                     "Pietro", "il piccolo ragazzo", "la famiglia", "lui", "lei"),
        "subjects_plural": ("noi",),
        "verbs": ("guarda", "compra", "trova", "porta", "cerca", "apre", "prende", "dipinge", "vende",
                  "dimentica", "legge", "ama"),
        "verbs_plural": ("guardiamo", "compriamo", "troviamo", "portiamo", "cerchiamo", "apriamo", "prendiamo",
                         "dipingiamo", "vendiamo", "dimentichiamo", "leggiamo", "amiamo"),
        "objects": ("la palla", "una mela", "il libro", "la porta", "il pane", "la chiave", "il giornale",
                    "una lettera", "la finestra", "la borsa", "un quadro", "il cappello", "un fiore",
                    "la macchina", "una sedia", "il latte"),
        "complements": ("nel giardino", "stamattina", "ogni giorno", "con gioia", "dopo la scuola", "oggi",
                        "molto lentamente", "in città", "la sera", "davanti alla casa", "in inverno", "ieri"),
        "conjunctions": ("e", "ma", "poi"),
    },
}
# German "wir" takes the plural verb; other languages list their plural subjects separately.
PHRASES["de"]["subjects_plural"] = ("wir",)
PHRASES["de"]["subjects"] = tuple(s for s in PHRASES["de"]["subjects"] if s != "wir")

# espeak-ng voices per language (accents); Debian's espeak-ng 1.51 has all of them.
VOICES = {
    "en": ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd"),
    "de": ("de",),
    "fr": ("fr-fr", "fr-be", "fr-ch"),
    "es": ("es", "es-419"),
    "it": ("it",),
}
LANGUAGES = tuple(VOICES)


class PhraseSentences:
    """Sentences of one language from its phrase lists, reproducible from a random.Random."""

    def __init__(self, language: str, rng: random.Random):
        self.phrases = PHRASES[language]
        self.rng = rng

    def clause(self) -> str:
        p = self.phrases
        if self.rng.random() < 0.15:
            subject, verb = self.rng.choice(p["subjects_plural"]), self.rng.choice(p["verbs_plural"])
        else:
            subject, verb = self.rng.choice(p["subjects"]), self.rng.choice(p["verbs"])
        return f"{subject} {verb} {self.rng.choice(p['objects'])}"

    def sentence(self) -> str:
        while True:
            sentence = self._draft()
            if 3 <= len(sentence.split()) <= 12:
                return sentence

    def _draft(self) -> str:
        words = [self.clause()]
        if self.rng.random() < 0.6:
            words.append(self.rng.choice(self.phrases["complements"]))
        if self.rng.random() < 0.3:
            words += [self.rng.choice(self.phrases["conjunctions"]), self.clause()]
        return " ".join(words)


def sentence_generator(language: str, rng: random.Random):
    """An object with .sentence() -> lower-case(ish) sentence without final punctuation."""
    if language == "en":
        return EnglishSentences(rng)
    if language not in PHRASES:
        raise KeyError(language)
    return PhraseSentences(language, rng)


def written_form(sentence: str, question: bool = False) -> str:
    """Common Voice style: capitalised first letter, final punctuation."""
    text = sentence[0].upper() + sentence[1:]
    text = " ".join("I" if word == "i" else word.replace("i'", "I'", 1) if word.startswith("i'") else word
                    for word in text.split())
    return text + ("?" if question else ".")
